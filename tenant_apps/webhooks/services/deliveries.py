"""The delivery state machine a job drives: claim the delivery, one signed POST (public_app.clients.webhooks),
record the attempt, then success, a scheduled retry or failure; an endpoint failing for long enough is disabled and
its owners are told. `deliveries_redrive` re-enqueues deliveries whose job was lost."""

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from public_app.clients import webhooks as webhook_client
from public_app.crypto import decrypt
from public_app.models import Organization, OrganizationStatus
from public_app.outbox import enqueue
from public_app.tenancy import tenant_context
from tenant_apps.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenant_apps.webhooks.services.events import delivery_enqueue


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
        delivery_enqueue(organization, delivery.id, delay)
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
