"""Webhook endpoints (Settings → Developers): create, update, rotate the signing secret, delete. Every change goes
through public_app.events (audited)."""

from typing import Any

from django.db import transaction

from public_app import errors
from public_app.access import Access
from public_app.clients import webhooks as webhook_client
from public_app.crypto import encrypt
from public_app.events import Target, happened
from tenant_apps.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint


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


def _target(endpoint: WebhookEndpoint) -> Target:
    return Target("webhook", endpoint.uid, endpoint.url[:254])


def endpoint_get(*, endpoint_uid: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(uid=endpoint_uid).first()
    if endpoint is None:
        raise errors.NotFound("Webhook endpoint not found.")
    return endpoint


@transaction.atomic
def endpoint_create(
    *, access: Access, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    secret = webhook_client.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=_validate_url(url),
        events=_validate_events(events),
        description=description,
        secret_encrypted=encrypt(secret),
    )
    happened(access=access, action="webhook.created", target=_target(endpoint), data={"events": endpoint.events})
    return endpoint, secret


@transaction.atomic
def endpoint_update(*, access: Access, endpoint_uid: str, changes: dict[str, Any]) -> WebhookEndpoint:
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
        changed = {"fields": sorted(set(fields))}
        happened(access=access, action="webhook.updated", target=_target(endpoint), data=changed)
    return endpoint


@transaction.atomic
def endpoint_rotate_secret(*, access: Access, endpoint_uid: str) -> tuple[WebhookEndpoint, str]:
    endpoint = endpoint_get(endpoint_uid=endpoint_uid)
    secret = webhook_client.new_secret()
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    happened(access=access, action="webhook.updated", target=_target(endpoint), data={"fields": ["secret"]})
    return endpoint, secret


@transaction.atomic
def endpoint_delete(*, access: Access, endpoint_uid: str) -> None:
    endpoint = endpoint_get(endpoint_uid=endpoint_uid)
    happened(access=access, action="webhook.deleted", target=_target(endpoint))
    # Lock the endpoint's deliveries first: Django's cascade collects the attempts, then deletes, and a worker
    # recording an attempt in between made the delete fail on the foreign key (a 500, found by Schemathesis). With
    # the deliveries locked, such an insert waits for this commit and then finds its delivery gone.
    list(WebhookDelivery.objects.filter(endpoint=endpoint).select_for_update().values_list("pk", flat=True))
    endpoint.delete()
