"""The organization's Stripe customer, Checkout and Portal sessions, and invoices."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from public_app import errors
from public_app.clients import stripe_api
from public_app.models import BillingAccount, Organization
from public_app.outbox import enqueue
from public_app.plans import plans
from public_app.services.billing.accounts import billing_account, seats_used, stripe_call


def customer_ensure(*, organization: Organization) -> str:
    """The organization's Stripe customer id, created once (a deterministic idempotency key and the organization
    id in metadata make a retried creation return the same customer)."""
    account = billing_account(organization)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = stripe_call(
        stripe_api.customer_create,
        organization_uid=organization.uid,
        name=organization.name,
        email=organization.billing_email or None,
    )
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id, updated_at=timezone.now()
    )
    return BillingAccount.objects.get(pk=account.pk).stripe_customer_id


def _check_return_url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.ValidationFailed.for_field(field, "Give an absolute http(s) URL.")
    if (parts.hostname or "").lower() not in {host.lower() for host in settings.BILLING_REDIRECT_HOSTS}:
        # Else a Stripe page on our account would forward people to any site (phishing through a trusted page).
        raise errors.ValidationFailed.for_field(field, "This host is not one the application returns to.")
    return value


def checkout_start(*, organization: Organization, plan: str, success_url: str, cancel_url: str) -> str:
    chosen = plans().get(plan)
    if chosen is None or not chosen.stripe_price_id:
        raise errors.ValidationFailed.for_field("plan", "Choose a paid plan: " + ", ".join(
            code for code, p in plans().items() if p.stripe_price_id
        ))  # fmt: skip
    _check_return_url(success_url, "success_url")
    _check_return_url(cancel_url, "cancel_url")
    used = seats_used(organization)
    if chosen.max_seats is not None and used > chosen.max_seats:
        raise errors.Conflict(f"The {plan} plan allows {chosen.max_seats} seats.", code="seat_limit_reached")
    return stripe_call(
        stripe_api.checkout_session_create,
        customer_id=customer_ensure(organization=organization),
        organization_uid=organization.uid,
        price_id=chosen.stripe_price_id,
        quantity=max(used, 1),
        plan=plan,
        success_url=success_url,
        cancel_url=cancel_url,
    )


def portal_start(*, organization: Organization, return_url: str) -> str:
    _check_return_url(return_url, "return_url")
    return stripe_call(
        stripe_api.portal_session_create, customer_id=customer_ensure(organization=organization), return_url=return_url
    )


def invoices_page(*, organization: Organization, limit: int, cursor: str | None) -> dict[str, Any]:
    account = billing_account(organization)
    if not account.stripe_customer_id:
        return {"items": [], "next_cursor": None}
    if cursor is not None and not (cursor.startswith("in_") and cursor.replace("_", "").isalnum()):
        raise errors.ValidationFailed.for_field("cursor", "The cursor is not valid.")
    invoices, has_more = stripe_call(
        stripe_api.invoices_list, customer_id=account.stripe_customer_id, limit=limit, starting_after=cursor
    )
    items = [
        {
            "id": inv["id"],
            "number": inv.get("number"),
            "status": inv.get("status"),
            "amount_due": inv.get("amount_due", 0),
            "currency": inv.get("currency", ""),
            "created": datetime.fromtimestamp(inv.get("created", 0), tz=UTC),
            "hosted_invoice_url": inv.get("hosted_invoice_url"),
            "pdf_url": inv.get("invoice_pdf"),
        }
        for inv in invoices
    ]
    return {"items": items, "next_cursor": items[-1]["id"] if has_more and items else None}


def customer_create_request(*, organization: Organization) -> None:
    """After commit, create the organization's Stripe customer in a job (when billing is configured)."""
    if settings.STRIPE_SECRET_KEY:
        enqueue("create_stripe_customer", organization.id, organization=organization)
