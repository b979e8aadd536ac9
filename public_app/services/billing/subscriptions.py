"""Stripe's webhook events (verified, stored once, processed by a job) and the subscription they describe: plan,
status, period, payment method; cancellation at period end while an organization is being deleted.

Policy for lapsed subscriptions (documented in README): see public_app.services.billing."""

import json
from datetime import UTC, datetime
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Access
from public_app.clients import stripe_api
from public_app.events import Target, happened
from public_app.models import BillingAccount, Organization, OrganizationStatus, StripeEvent
from public_app.outbox import enqueue
from public_app.plans import plans
from public_app.services.billing.accounts import PAID_STATUSES
from public_app.services.billing.seats import seats_sync_request

HANDLED_EVENTS = {
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
}


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
    metadata: dict[str, Any] = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
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
            happened(access=Access.system(org), action="subscription.updated",
                     target=Target("subscription", subscription["id"], org.plan), data=change)  # fmt: skip
    # The subscription may have been bought for a member count that changed meanwhile.
    seats_sync_request(organization=org)


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
