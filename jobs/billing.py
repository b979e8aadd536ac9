"""Billing actors: Stripe customer creation, seat sync, Stripe event processing, cancellation on deletion."""

from typing import Any

import dramatiq

from public_app.models import Organization, OrganizationStatus
from public_app.services.billing.checkout import customer_ensure
from public_app.services.billing.seats import seats_sync
from public_app.services.billing.subscriptions import stripe_event_process, subscription_cancel_for_deletion

STRIPE_RETRIES: dict[str, Any] = {"max_retries": 10, "min_backoff": 2000, "max_backoff": 15 * 60 * 1000}


@dramatiq.actor(queue_name="billing", **STRIPE_RETRIES)
def create_stripe_customer(organization_id: int) -> None:
    organization = Organization.objects.filter(id=organization_id, status=OrganizationStatus.ACTIVE).first()
    if organization is not None:
        customer_ensure(organization=organization)


@dramatiq.actor(queue_name="billing", **STRIPE_RETRIES)
def sync_billing_seats(organization_id: int) -> None:
    seats_sync(organization_id=organization_id)


@dramatiq.actor(queue_name="billing", **STRIPE_RETRIES)
def process_stripe_event(event_id: str) -> None:
    stripe_event_process(event_id=event_id)


@dramatiq.actor(queue_name="billing", **STRIPE_RETRIES)
def set_subscription_cancellation(organization_id: int, cancel: bool) -> None:
    subscription_cancel_for_deletion(organization_id=organization_id, cancel=cancel)
