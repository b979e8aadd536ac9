"""Settings → Developers: webhook endpoints and their deliveries (owners and admins; API keys too)."""

from datetime import datetime

from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictBool

from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn, ShortText
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import ShownOnce
from tenant_apps.webhooks.models import DeliveryStatus, EventType, WebhookDelivery, WebhookEndpoint
from tenant_apps.webhooks.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_get,
    endpoint_rotate_secret,
    endpoint_update,
)
from tenant_apps.webhooks.services.events import event_emit

router = Router(tags=["Developers"], auth=OrgAuth(Capability.DEVELOPERS, tenant_schema=True))


class EndpointCreateIn(BodyIn):
    url: str = Field(..., max_length=2000)
    events: list[EventType] = Field(..., min_length=1, max_length=50)
    description: ShortText = ""


class EndpointUpdateIn(BodyIn):
    url: str | None = Field(None, max_length=2000)
    events: list[EventType] | None = Field(None, min_length=1, max_length=50)
    description: ShortText | None = None
    enabled: StrictBool | None = None  # `0` or `"false"` is not a boolean: 422, not "disabled"


class EndpointOut(Schema):
    id: str = Field(alias="uid")
    url: str
    events: list[EventType]
    description: str
    enabled: bool
    disabled_reason: str
    created_at: datetime


class EndpointWithSecretOut(EndpointOut):
    secret: str | None


class DeliveryOut(Schema):
    id: str = Field(alias="uid")
    event: EventType = Field(alias="event_type")
    event_id: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    response_body: str
    last_error: str
    created_at: datetime
    next_attempt_at: datetime | None


@router.get("/{slug}/webhooks", response=Page[EndpointOut])
def list_webhooks(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Webhook endpoints, newest first."""
    return paginate(WebhookEndpoint.objects.all(), page)


@router.post("/{slug}/webhooks", response={201: EndpointWithSecretOut})
@may_raise("webhook_url_forbidden")
def create_webhook(request: AuthedRequest, slug: str, payload: EndpointCreateIn) -> Status:
    """Subscribe a URL to events. The signing `secret` (Standard Webhooks, `whsec_…`) is shown only here."""
    endpoint, secret = endpoint_create(
        access=request.auth,
        url=payload.url,
        events=[event.value for event in payload.events],
        description=payload.description,
    )
    return Status(201, ShownOnce(endpoint, secret=secret))


@router.get("/{slug}/webhooks/{webhook_id}", response=EndpointOut)
def get_webhook(request: AuthedRequest, slug: str, webhook_id: str) -> WebhookEndpoint:
    """One endpoint (without its secret)."""
    return endpoint_get(endpoint_uid=webhook_id)


@router.patch("/{slug}/webhooks/{webhook_id}", response=EndpointOut)
@may_raise("webhook_url_forbidden")
def update_webhook(request: AuthedRequest, slug: str, webhook_id: str, payload: EndpointUpdateIn) -> WebhookEndpoint:
    """Change url, events, description, or re-enable (`enabled: true`) a disabled endpoint."""
    return endpoint_update(access=request.auth, endpoint_uid=webhook_id, changes=payload.dict(exclude_unset=True))


@router.delete("/{slug}/webhooks/{webhook_id}", response={204: None})
def delete_webhook(request: AuthedRequest, slug: str, webhook_id: str) -> Status:
    """Delete an endpoint and its delivery history."""
    endpoint_delete(access=request.auth, endpoint_uid=webhook_id)
    return Status(204, None)


@router.post("/{slug}/webhooks/{webhook_id}/rotate-secret", response=EndpointWithSecretOut)
def rotate_webhook_secret(request: AuthedRequest, slug: str, webhook_id: str) -> ShownOnce:
    """Replace the signing secret; the new one is shown only here and signs every later attempt."""
    endpoint, secret = endpoint_rotate_secret(access=request.auth, endpoint_uid=webhook_id)
    return ShownOnce(endpoint, secret=secret)


@router.get("/{slug}/webhooks/{webhook_id}/deliveries", response=Page[DeliveryOut])
def list_webhook_deliveries(request: AuthedRequest, slug: str, webhook_id: str, page: Query[PageQuery]) -> dict:
    """Deliveries to this endpoint, newest first: status, attempts, last response, next attempt."""
    endpoint = endpoint_get(endpoint_uid=webhook_id)
    return paginate(WebhookDelivery.objects.filter(endpoint=endpoint), page)


@router.post("/{slug}/webhooks/{webhook_id}/test", response={202: dict})
def test_webhook(request: AuthedRequest, slug: str, webhook_id: str) -> Status:
    """Send a `ping` event to this endpoint."""
    endpoint = endpoint_get(endpoint_uid=webhook_id)
    event_id = event_emit(
        organization=request.auth.org, event_type="ping", data={"webhook_id": endpoint.uid}, endpoint=endpoint
    )
    return Status(202, {"event_id": event_id})
