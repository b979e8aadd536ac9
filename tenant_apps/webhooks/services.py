"""Webhook endpoints (Settings → Developers) and event delivery.

`event_emit` is what other services call (inside their transaction): it writes one delivery row per subscribed,
enabled endpoint in the organization's schema and enqueues a delivery job for each after commit. `delivery_attempt`
is the job's body: one signed POST, recorded as an attempt, then success, a scheduled retry, or failure.
"""

import json
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Actor
from public_app.clients import webhooks as webhook_client
from public_app.crypto import decrypt, encrypt
from public_app.models import Organization, OrganizationStatus
from public_app.outbox import enqueue
from public_app.tenancy import tenant_context
from tenant_apps.audit.services import audit_record
from tenant_apps.webhooks.models import (
    EVENT_TYPES,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    event_uid,
)


def _validate_events(events: list[str]) -> list[str]:
    if not events:
        raise errors.ValidationFailed.for_field("events", "Subscribe to at least one event.")
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise errors.ValidationFailed.for_field("events", f"Unknown events: {', '.join(unknown)}.")
    return sorted(set(events))


def _validate_url(url: str) -> str:
    try:
        webhook_client.url_check(url)
    except webhook_client.ForbiddenTarget as exc:
        raise errors.ValidationFailed(str(exc), code="webhook_url_forbidden", details=[
            {"field": "url", "message": str(exc)}
        ]) from None  # fmt: skip
    except webhook_client.InvalidTarget as exc:
        raise errors.ValidationFailed.for_field("url", str(exc)) from None
    return url


def _target(endpoint: WebhookEndpoint) -> dict:
    return {"target_type": "webhook", "target_id": endpoint.uid, "target_label": endpoint.url[:254]}


def endpoint_get(*, endpoint_uid: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(uid=endpoint_uid).first()
    if endpoint is None:
        raise errors.NotFound("Webhook endpoint not found.")
    return endpoint


@transaction.atomic
def endpoint_create(
    *, organization: Organization, actor: Actor, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    secret = webhook_client.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=_validate_url(url),
        events=_validate_events(events),
        description=description,
        secret_encrypted=encrypt(secret),
    )
    audit_record(
        organization=organization, actor=actor, action="webhook.created", data={"events": endpoint.events},
        **_target(endpoint),
    )  # fmt: skip
    return endpoint, secret


@transaction.atomic
def endpoint_update(
    *, organization: Organization, actor: Actor, endpoint_uid: str, changes: dict[str, Any]
) -> WebhookEndpoint:
    endpoint = endpoint_get(endpoint_uid=endpoint_uid)
    fields = []
    if changes.get("url") is not None:
        endpoint.url = _validate_url(changes["url"])
        fields.append("url")
    if changes.get("events") is not None:
        endpoint.events = _validate_events(changes["events"])
        fields.append("events")
    if changes.get("description") is not None:
        endpoint.description = changes["description"]
        fields.append("description")
    if changes.get("enabled") is not None:
        endpoint.enabled = changes["enabled"]
        if endpoint.enabled:
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
        fields += ["enabled", "disabled_reason", "failing_since"]
    if fields:
        endpoint.save(update_fields=[*fields, "updated_at"])
        audit_record(
            organization=organization, actor=actor, action="webhook.updated", data={"fields": sorted(set(fields))},
            **_target(endpoint),
        )  # fmt: skip
    return endpoint


@transaction.atomic
def endpoint_rotate_secret(
    *, organization: Organization, actor: Actor, endpoint_uid: str
) -> tuple[WebhookEndpoint, str]:
    endpoint = endpoint_get(endpoint_uid=endpoint_uid)
    secret = webhook_client.new_secret()
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    audit_record(
        organization=organization, actor=actor, action="webhook.updated", data={"fields": ["secret"]},
        **_target(endpoint),
    )  # fmt: skip
    return endpoint, secret


@transaction.atomic
def endpoint_delete(*, organization: Organization, actor: Actor, endpoint_uid: str) -> None:
    endpoint = endpoint_get(endpoint_uid=endpoint_uid)
    audit_record(organization=organization, actor=actor, action="webhook.deleted", **_target(endpoint))
    endpoint.delete()


def _enqueue(organization: Organization, delivery_id: int, delay_seconds: float = 0) -> None:
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
        _enqueue(organization, delivery_id)
    return event_id


def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Take the delivery for one attempt, or None when there is nothing to do (done, or another attempt is in
    flight, or this message is an early duplicate of a scheduled retry)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").filter(id=delivery_id).first()
        if delivery is None or delivery.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
            return None
        if delivery.locked_until and delivery.locked_until > now:
            return None
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return None
        delivery.attempts += 1
        delivery.locked_until = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3)
        delivery.save(update_fields=["attempts", "locked_until"])
        return delivery


def delivery_attempt(*, organization: Organization, delivery_id: int) -> str | None:
    """One attempt at one delivery. Returns the delivery's status afterwards, or None if nothing was done."""
    if organization.status != OrganizationStatus.ACTIVE:
        return None
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(id=delivery.id).update(
            status=DeliveryStatus.FAILED, last_error="endpoint disabled", locked_until=None, next_attempt_at=None
        )
        return DeliveryStatus.FAILED
    started = time.monotonic()
    result = webhook_client.deliver(
        endpoint.url, decrypt(endpoint.secret_encrypted), delivery.event_id, timezone.now(), delivery.payload
    )
    duration_ms = int((time.monotonic() - started) * 1000)
    return _record(organization, delivery, endpoint, result, duration_ms)


@transaction.atomic
def _record(
    organization: Organization,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    result: webhook_client.DeliveryResult,
    duration_ms: int,
) -> str:
    now = timezone.now()
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        response_status=result.status,
        response_body=result.body,
        error=result.error,
        duration_ms=duration_ms,
    )
    delivery.response_status = result.status
    delivery.response_body = result.body
    delivery.last_error = result.error
    delivery.locked_until = None
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if result.status is not None and 200 <= result.status < 300:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.next_attempt_at = None
        WebhookEndpoint.objects.filter(id=endpoint.id).update(failing_since=None)
    elif delivery.attempts < len(schedule):
        delivery.status = DeliveryStatus.RETRYING
        delay = schedule[delivery.attempts]
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        _enqueue(organization, delivery.id, delay)
    else:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
    delivery.save()
    if delivery.status != DeliveryStatus.SUCCEEDED:
        _note_failure(organization, endpoint, now)
    return delivery.status


def _note_failure(organization: Organization, endpoint: WebhookEndpoint, now: Any) -> None:
    endpoint = WebhookEndpoint.objects.select_for_update().get(id=endpoint.id)
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        endpoint.save(update_fields=["failing_since"])
    elif endpoint.enabled and (now - endpoint.failing_since).total_seconds() >= settings.WEBHOOK_DISABLE_AFTER_SECONDS:
        endpoint.enabled = False
        endpoint.disabled_reason = "Disabled after failing continuously."
        endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
        enqueue("send_webhook_disabled_email", organization.id, endpoint.uid, organization=organization)


def deliveries_redrive(*, organization: Organization) -> int:
    """Inside one organization's schema: deliveries overdue for more than REDRIVE_AFTER_SECONDS (and not being
    attempted) get their job again."""
    from django.db.models import Q

    cutoff = timezone.now() - timedelta(seconds=settings.REDRIVE_AFTER_SECONDS)
    with tenant_context(organization):
        due = list(WebhookDelivery.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=timezone.now()),
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__lt=cutoff,
        ).values_list("id", flat=True)[:500])  # fmt: skip
    for delivery_id in due:
        enqueue("deliver_webhook", organization.id, delivery_id, organization=organization, unique=True)
    return len(due)
