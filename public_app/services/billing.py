"""Billing with Stripe: customers, Checkout and Portal sessions, the seat sync, and Stripe webhook events.

Policy for lapsed subscriptions (documented in README): `past_due` keeps the paid plan while Stripe retries the
payment; `unpaid`, `canceled` and `incomplete_expired` put the organization back on the free plan. Nothing is ever
locked or deleted for non-payment: reading and writing continue, only the free plan's seat cap applies again
(existing members keep access; new invitations beyond the cap are refused).
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import SYSTEM_ACTOR
from public_app.clients import stripe_api
from public_app.models import BillingAccount, Membership, Organization, OrganizationStatus, StripeEvent
from public_app.outbox import enqueue
from public_app.plans import plan_get, plans
from tenant_apps.audit.services import audit_record

logger = logging.getLogger(__name__)

PAID_STATUSES = {"active", "trialing", "past_due"}
HANDLED_EVENTS = {
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
}


def billing_account(organization: Organization) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(organization=organization)
    return account


def seats_used(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization).count()


def _stripe_call(func: Any, **kwargs: Any) -> Any:
    try:
        return func(**kwargs)
    except stripe_api.StripeNotConfigured:
        raise errors.ServiceUnavailable("Billing is not configured here.", code="billing_not_configured") from None
    except stripe.StripeError as exc:
        logger.warning("stripe call %s failed: %s", getattr(func, "__name__", func), exc)
        raise errors.BadGateway(
            "Stripe could not complete the request; try again.", code="stripe_unavailable"
        ) from None


def customer_ensure(*, organization: Organization) -> str:
    """The organization's Stripe customer id, created once (a deterministic idempotency key and the organization
    id in metadata make a retried creation return the same customer)."""
    account = billing_account(organization)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = _stripe_call(
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
    return _stripe_call(
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
    return _stripe_call(
        stripe_api.portal_session_create, customer_id=customer_ensure(organization=organization), return_url=return_url
    )


def invoices_page(*, organization: Organization, limit: int, cursor: str | None) -> dict[str, Any]:
    account = billing_account(organization)
    if not account.stripe_customer_id:
        return {"items": [], "next_cursor": None}
    if cursor is not None and not (cursor.startswith("in_") and cursor.replace("_", "").isalnum()):
        raise errors.ValidationFailed.for_field("cursor", "The cursor is not valid.")
    invoices, has_more = _stripe_call(
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


# --- Seat sync -----------------------------------------------------------------------------------------------------


def seats_sync_request(*, organization: Organization) -> None:
    """Make sure one seat sync is queued (with the caller's commit). Changes arriving while one is queued ride along
    with it; a change after the queued job has started queues the trailing run that picks it up."""
    if not settings.STRIPE_SECRET_KEY:
        return
    delay = timedelta(milliseconds=settings.BILLING_SEAT_SYNC_DELAY_MS) if settings.BILLING_SEAT_SYNC_DELAY_MS else None
    enqueue("sync_billing_seats", organization.id, organization=organization, delay=delay, unique=True)


def seats_sync(*, organization_id: int) -> int | None:
    """Set the subscription item's quantity to the live member count. Returns the quantity pushed, or None."""
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().filter(organization_id=organization_id).first()
        if (
            account is None
            or not account.stripe_subscription_item_id
            or account.subscription_status not in PAID_STATUSES
        ):
            return None
        quantity = Membership.objects.filter(organization_id=organization_id).count()
        if quantity == account.seats_billed and account.seats_pending is None:
            return None
        if account.seats_pending != quantity:
            account.seats_version += 1
            account.seats_pending = quantity
            account.save(update_fields=["seats_version", "seats_pending", "updated_at"])
        item_id, version = account.stripe_subscription_item_id, account.seats_version
    stripe_api.subscription_item_set_quantity(
        item_id=item_id, quantity=quantity, idempotency_key=f"seats-{item_id}-{quantity}-v{version}"
    )
    BillingAccount.objects.filter(organization_id=organization_id, seats_version=version).update(
        seats_billed=quantity, seats_pending=None, updated_at=timezone.now()
    )
    return quantity


# --- Stripe webhooks -----------------------------------------------------------------------------------------------


def stripe_event_receive(*, payload: bytes, signature: str | None) -> bool:
    """Verify and store the event (once per id); returns False for a duplicate. Processing happens in a job."""

    if not settings.STRIPE_WEBHOOK_SECRET:
        raise errors.ServiceUnavailable("Billing is not configured here.", code="billing_not_configured")
    try:
        event = stripe_api.event_from_webhook(payload, signature)
    except (ValueError, stripe.SignatureVerificationError):
        raise errors.BadRequest("The Stripe signature is missing or wrong.", code="invalid_signature") from None
    except (AttributeError, TypeError, RecursionError):  # signed, but not a JSON object (`[]`, `null`, too deep)
        raise errors.BadRequest("The event is not a JSON object.", code="invalid_event") from None
    raw_event = event.to_dict()
    try:  # what PostgreSQL's jsonb refuses: NaN/Infinity, NUL characters, lone surrogates
        json.dumps(raw_event, allow_nan=False, ensure_ascii=False).encode("utf-8")
        if "\\u0000" in json.dumps(raw_event):
            raise ValueError("NUL")
    except (ValueError, UnicodeEncodeError, RecursionError):
        raise errors.BadRequest("The event holds values JSON storage refuses.", code="invalid_event") from None
    event_id, event_type, data = raw_event.get("id"), raw_event.get("type"), raw_event.get("data")
    if (
        not isinstance(event_id, str) or not 0 < len(event_id) <= 255
        or not isinstance(event_type, str) or not 0 < len(event_type) <= 100
        or not isinstance(data, dict) or not isinstance(data.get("object"), dict)
    ):  # fmt: skip
        raise errors.BadRequest("The event needs an id, a type and a data.object.", code="invalid_event")
    with transaction.atomic():
        _, created = StripeEvent.objects.get_or_create(id=event_id, defaults={"type": event_type, "payload": raw_event})
        if created and event_type in HANDLED_EVENTS:
            enqueue("process_stripe_event", event_id)
    return created


def _text(value: Any) -> str | None:
    """A field an event should carry as a short string; anything else (a signed but malformed event) is absent."""
    return value if isinstance(value, str) and 0 < len(value) <= 255 and "\x00" not in value else None


def _organization_for(data: dict[str, Any]) -> Organization | None:
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    uid = _text(data.get("client_reference_id")) or _text(metadata.get("organization_id"))
    if uid:
        return Organization.objects.filter(uid=uid).first()
    customer = _text(data.get("customer"))
    if customer:
        account = BillingAccount.objects.filter(stripe_customer_id=customer).select_related("organization").first()
        return account.organization if account else None
    return None


def stripe_event_process(*, event_id: str) -> None:
    """Apply an event by re-reading the subscription from Stripe: events arrive late, twice and out of order, but
    the subscription as Stripe has it now is never older than any event about it."""
    event = StripeEvent.objects.filter(id=event_id).first()
    if event is None or event.processed_at is not None:
        return
    data = (event.payload.get("data") or {}).get("object") or {}
    organization = _organization_for(data)
    if organization is not None and organization.status != OrganizationStatus.PROVISIONING:
        subscription_id = _text(data.get("subscription") if data.get("object") != "subscription" else data.get("id"))
        if subscription_id:
            subscription_refresh(
                organization=organization, subscription_id=subscription_id, customer=_text(data.get("customer"))
            )
    StripeEvent.objects.filter(id=event_id).update(processed_at=timezone.now())


def _plan_for_price(price_id: str) -> str | None:
    return next(
        (code for code, plan in plans().items() if plan.stripe_price_id and plan.stripe_price_id == price_id), None
    )


def subscription_refresh(*, organization: Organization, subscription_id: str, customer: str | None = None) -> None:
    from tenant_apps.webhooks.services import event_emit

    subscription = stripe_api.subscription_get(subscription_id)
    item = subscription["items"]["data"][0] if subscription["items"]["data"] else None
    status = subscription["status"]
    paid = status in PAID_STATUSES
    plan = (_plan_for_price(item["price"]["id"]) if item else None) if paid else None
    period_end = (item.get("current_period_end") if item else None) or subscription.get("current_period_end")
    method = subscription.get("default_payment_method")
    card = method.get("card") if isinstance(method, dict) else None
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().get_or_create(organization=organization)[0]
        before = (account.subscription_status, organization.plan)
        account.stripe_customer_id = account.stripe_customer_id or (customer or subscription.get("customer") or "")
        account.stripe_subscription_id = subscription["id"]
        account.stripe_subscription_item_id = item["id"] if item else ""
        account.subscription_status = status
        account.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
        account.current_period_end = datetime.fromtimestamp(period_end, tz=UTC) if period_end else None
        if account.seats_pending is None and item is not None:
            account.seats_billed = item.get("quantity") or 0
        if card:
            account.payment_method_brand = card.get("brand") or ""
            account.payment_method_last4 = card.get("last4") or ""
        account.save()
        org = Organization.objects.select_for_update().get(id=organization.id)
        org.plan = plan or "free"
        if org.plan != organization.plan:
            org.save(update_fields=["plan", "updated_at"])
        if before != (status, org.plan) and org.status == OrganizationStatus.ACTIVE:
            change = {"status": status, "plan": org.plan, "previous_status": before[0] or None,
                      "previous_plan": before[1]}  # fmt: skip
            audit_record(
                organization=org, actor=SYSTEM_ACTOR, action="subscription.updated", target_type="subscription",
                target_id=subscription["id"], target_label=org.plan, data=change,
            )  # fmt: skip
            event_emit(organization=org, event_type="subscription.updated", data=change)
    # The subscription may have been bought for a member count that changed meanwhile.
    seats_sync_request(organization=org)


def billing_status(*, organization: Organization) -> dict[str, Any]:
    account = billing_account(organization)
    return {
        "plan": organization.plan,
        "status": account.subscription_status or ("free" if organization.plan == "free" else "unknown"),
        "seats_used": seats_used(organization),
        "seats_billed": account.seats_billed,
        "max_seats": plan_get(organization.plan).max_seats,
        "current_period_end": account.current_period_end,
        "cancel_at_period_end": account.cancel_at_period_end,
        "payment_method": (
            {"brand": account.payment_method_brand, "last4": account.payment_method_last4}
            if account.payment_method_last4
            else None
        ),
    }


def customer_create_request(*, organization: Organization) -> None:
    """After commit, create the organization's Stripe customer in a job (when billing is configured)."""
    if settings.STRIPE_SECRET_KEY:
        enqueue("create_stripe_customer", organization.id, organization=organization)


def subscription_cancellation_request(*, organization: Organization, cancel: bool) -> None:
    if (
        settings.STRIPE_SECRET_KEY
        and BillingAccount.objects.filter(organization=organization, stripe_subscription_id__gt="").exists()
    ):
        enqueue("set_subscription_cancellation", organization.id, cancel, organization=organization)


def subscription_cancel_for_deletion(*, organization_id: int, cancel: bool) -> None:
    """Deleting an organization sets its subscription to cancel at period end; restoring it undoes that."""
    account = BillingAccount.objects.filter(organization_id=organization_id).first()
    if account is None or not account.stripe_subscription_id:
        return
    stripe_api.subscription_set_cancel_at_period_end(subscription_id=account.stripe_subscription_id, cancel=cancel)
    BillingAccount.objects.filter(pk=account.pk).update(cancel_at_period_end=cancel, updated_at=timezone.now())
