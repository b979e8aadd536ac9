"""Stripe, behind one thin module: stripe-python's StripeClient pointed at STRIPE_API_BASE. Only services call it.

Every write carries an idempotency key derived from what it does, so a retried job never creates a second customer
or applies a quantity change twice.
"""

import time
from typing import Any

import stripe
from django.conf import settings


class StripeNotConfigured(Exception):
    pass


def client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise StripeNotConfigured("STRIPE_SECRET_KEY is not set")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=2,
    )


def customer_create(*, organization_uid: str, name: str, email: str | None) -> str:
    params: dict[str, Any] = {"name": name, "metadata": {"organization_id": organization_uid}}
    if email:
        params["email"] = email
    customer = client().v1.customers.create(
        params=params,  # type: ignore[arg-type]  # stripe's TypedDict; built conditionally above
        options={"idempotency_key": f"customer-create-{organization_uid}"},
    )
    return customer.id


def checkout_session_create(
    *, customer_id: str, organization_uid: str, price_id: str, quantity: int, plan: str, success_url: str,
    cancel_url: str,
) -> str:  # fmt: skip
    session = client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": organization_uid,
            "line_items": [{"price": price_id, "quantity": quantity}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"organization_id": organization_uid, "plan": plan},
            "subscription_data": {"metadata": {"organization_id": organization_uid, "plan": plan}},
        }
    )
    return session.url or ""


def portal_session_create(*, customer_id: str, return_url: str) -> str:
    session = client().v1.billing_portal.sessions.create(params={"customer": customer_id, "return_url": return_url})
    return session.url


def subscription_get(subscription_id: str) -> dict[str, Any]:
    """The subscription as Stripe has it now, as plain dicts (with its default payment method expanded)."""
    subscription = client().v1.subscriptions.retrieve(subscription_id, params={"expand": ["default_payment_method"]})
    return subscription.to_dict()


def subscription_item_set_quantity(*, item_id: str, quantity: int, idempotency_key: str) -> None:
    client().v1.subscription_items.update(
        item_id,
        params={"quantity": quantity, "proration_behavior": settings.STRIPE_PRORATION_BEHAVIOR},
        options={"idempotency_key": idempotency_key},
    )


def subscription_set_cancel_at_period_end(*, subscription_id: str, cancel: bool) -> None:
    client().v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": cancel})


def invoices_list(*, customer_id: str, limit: int, starting_after: str | None) -> tuple[list[dict[str, Any]], bool]:
    params: dict[str, Any] = {"customer": customer_id, "limit": limit}
    if starting_after:
        params["starting_after"] = starting_after
    page = client().v1.invoices.list(params=params)  # type: ignore[arg-type]  # stripe's TypedDict
    return [invoice.to_dict() for invoice in page.data], bool(page.has_more)


TOLERANCE_SECONDS = 300  # stripe's own default, for timestamps in the past


def event_from_webhook(payload: bytes, signature: str | None) -> stripe.Event:
    """Verify `Stripe-Signature` over the raw body; raises ValueError or stripe.SignatureVerificationError.
    Timestamps too far in the future are refused as well as old ones (stripe only checks the past)."""
    event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET, TOLERANCE_SECONDS)
    stamps = [part[2:] for part in (signature or "").split(",") if part.startswith("t=")]
    if not stamps or not stamps[0].isdigit() or int(stamps[0]) > time.time() + TOLERANCE_SECONDS:
        raise ValueError("the signature's timestamp is outside the tolerance")
    return event
