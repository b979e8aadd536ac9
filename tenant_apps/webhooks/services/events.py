"""Event fan-out: `event_emit` is what other services call (inside their transaction), through public_app.events.
It writes one delivery row per subscribed, enabled endpoint in the organization's schema and enqueues a delivery job
for each after commit."""

import json
from datetime import timedelta
from typing import Any

from django.utils import timezone

from public_app.models import Organization
from public_app.outbox import enqueue
from public_app.tenancy import tenant_context
from tenant_apps.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint, event_uid


def delivery_enqueue(organization: Organization, delivery_id: int, delay_seconds: float = 0) -> None:
    enqueue("deliver_webhook", organization.id, delivery_id, organization=organization,
            delay=timedelta(seconds=delay_seconds) if delay_seconds else None)  # fmt: skip


def event_emit(
    *, organization: Organization, event_type: str, data: dict[str, Any], endpoint: WebhookEndpoint | None = None
) -> str:
    """Record the event for every subscribed endpoint (or just `endpoint`) and deliver it after commit."""
    assert event_type in EVENT_TYPES, event_type
    event_id = event_uid()
    payload = json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": timezone.now().isoformat().replace("+00:00", "Z"),
            "organization": {"id": organization.uid, "slug": organization.slug},
            "data": data,
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    with tenant_context(organization):
        endpoints = [endpoint] if endpoint else WebhookEndpoint.objects.filter(enabled=True)
        delivery_ids = [
            WebhookDelivery.objects.create(
                endpoint=target,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                next_attempt_at=timezone.now(),
            ).id
            for target in endpoints
            if endpoint or event_type in target.events
        ]
    for delivery_id in delivery_ids:
        delivery_enqueue(organization, delivery_id)
    return event_id
