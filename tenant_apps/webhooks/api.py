"""Settings → Developers: webhook endpoints and their deliveries (owners and admins; API keys too)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from public_app.access import Capability
from public_app.api.common import request_actor
from public_app.api.security import OrgAuth
from public_app.fields import ShortText
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tenant_apps.webhooks.services import (
    endpoint_create,
    endpoint_delete,
    endpoint_get,
    endpoint_rotate_secret,
    endpoint_update,
    event_emit,
)

router = Router(tags=["webhooks"])
developers = OrgAuth(Capability.DEVELOPERS, tenant_schema=True)


class EndpointCreateIn(Schema):
    url: str = Field(..., max_length=2000)
    events: list[ShortText] = Field(..., max_length=50)
    description: ShortText = ""


class EndpointUpdateIn(Schema):
    url: str | None = Field(None, max_length=2000)
    events: list[ShortText] | None = Field(None, max_length=50)
    description: ShortText | None = None
    enabled: bool | None = None


class EndpointOut(Schema):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str
    created_at: datetime


class EndpointWithSecretOut(EndpointOut):
    secret: str


class DeliveryOut(Schema):
    id: str
    event: str
    event_id: str
    status: str
    attempts: int
    response_status: int | None
    response_body: str
    last_error: str
    created_at: datetime
    next_attempt_at: datetime | None


def endpoint_out(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.uid,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at,
    }


def delivery_out(delivery: WebhookDelivery) -> dict:
    return {
        "id": delivery.uid,
        "event": delivery.event_type,
        "event_id": delivery.event_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_status": delivery.response_status,
        "response_body": delivery.response_body,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
    }


@router.get("/{slug}/webhooks", response=Page[EndpointOut], auth=developers)
def list_webhooks(request: HttpRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Webhook endpoints, newest first."""
    return paginate(WebhookEndpoint.objects.all(), page, endpoint_out)


@router.post("/{slug}/webhooks", response={201: EndpointWithSecretOut}, auth=developers)
def create_webhook(request: HttpRequest, slug: str, payload: EndpointCreateIn) -> Status:
    """Subscribe a URL to events. The signing `secret` (Standard Webhooks, `whsec_…`) is shown only here."""
    endpoint, secret = endpoint_create(
        organization=request.org.organization,
        actor=request_actor(request),
        url=payload.url,
        events=payload.events,
        description=payload.description,
    )
    return Status(201, {**endpoint_out(endpoint), "secret": secret})


@router.get("/{slug}/webhooks/{webhook_id}", response=EndpointOut, auth=developers)
def get_webhook(request: HttpRequest, slug: str, webhook_id: str) -> dict:
    """One endpoint (without its secret)."""
    return endpoint_out(endpoint_get(endpoint_uid=webhook_id))


@router.patch("/{slug}/webhooks/{webhook_id}", response=EndpointOut, auth=developers)
def update_webhook(request: HttpRequest, slug: str, webhook_id: str, payload: EndpointUpdateIn) -> dict:
    """Change url, events, description, or re-enable (`enabled: true`) a disabled endpoint."""
    endpoint = endpoint_update(
        organization=request.org.organization,
        actor=request_actor(request),
        endpoint_uid=webhook_id,
        changes=payload.dict(exclude_unset=True),
    )
    return endpoint_out(endpoint)


@router.delete("/{slug}/webhooks/{webhook_id}", response={204: None}, auth=developers)
def delete_webhook(request: HttpRequest, slug: str, webhook_id: str) -> Status:
    """Delete an endpoint and its delivery history."""
    endpoint_delete(organization=request.org.organization, actor=request_actor(request), endpoint_uid=webhook_id)
    return Status(204, None)


@router.post("/{slug}/webhooks/{webhook_id}/rotate-secret", response=EndpointWithSecretOut, auth=developers)
def rotate_webhook_secret(request: HttpRequest, slug: str, webhook_id: str) -> dict:
    """Replace the signing secret; the new one is shown only here and signs every later attempt."""
    endpoint, secret = endpoint_rotate_secret(
        organization=request.org.organization, actor=request_actor(request), endpoint_uid=webhook_id
    )
    return {**endpoint_out(endpoint), "secret": secret}


@router.get("/{slug}/webhooks/{webhook_id}/deliveries", response=Page[DeliveryOut], auth=developers)
def list_webhook_deliveries(request: HttpRequest, slug: str, webhook_id: str, page: Query[PageQuery]) -> dict:
    """Deliveries to this endpoint, newest first: status, attempts, last response, next attempt."""
    endpoint = endpoint_get(endpoint_uid=webhook_id)
    return paginate(WebhookDelivery.objects.filter(endpoint=endpoint), page, delivery_out)


@router.post("/{slug}/webhooks/{webhook_id}/test", response={202: dict}, auth=developers)
def test_webhook(request: HttpRequest, slug: str, webhook_id: str) -> Status:
    """Send a `ping` event to this endpoint."""
    endpoint = endpoint_get(endpoint_uid=webhook_id)
    event_id = event_emit(
        organization=request.org.organization, event_type="ping", data={"webhook_id": endpoint.uid}, endpoint=endpoint
    )
    return Status(202, {"event_id": event_id})
