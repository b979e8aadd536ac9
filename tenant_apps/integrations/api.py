"""Settings → Leadsforce (owners and admins)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from public_app.access import Capability
from public_app.api.common import request_actor
from public_app.api.security import OrgAuth
from public_app.fields import Secret
from tenant_apps.integrations.models import Integration
from tenant_apps.integrations.services import (
    leadsforce_connect,
    leadsforce_disconnect,
    leadsforce_get,
    leadsforce_sync_request,
)

router = Router(tags=["integrations"])
integrations = OrgAuth(Capability.INTEGRATIONS, tenant_schema=True)


class LeadsforceConnectIn(Schema):
    api_key: Secret


class LeadsforceOut(Schema):
    connected: bool
    account_name: str | None
    connected_at: datetime | None
    last_sync_at: datetime | None
    last_sync_error: str | None


def leadsforce_out(integration: Integration | None) -> dict:
    if integration is None:
        return {"connected": False, "account_name": None, "connected_at": None, "last_sync_at": None,
                "last_sync_error": None}  # fmt: skip
    return {
        "connected": True,
        "account_name": integration.account_name,
        "connected_at": integration.connected_at,
        "last_sync_at": integration.last_sync_at,
        "last_sync_error": integration.last_sync_error or None,
    }


@router.get("/{slug}/integrations/leadsforce", response=LeadsforceOut, auth=integrations)
def get_leadsforce(request: HttpRequest, slug: str) -> dict:
    """Connection status (the API key is never returned)."""
    return leadsforce_out(leadsforce_get())


@router.put("/{slug}/integrations/leadsforce", response=LeadsforceOut, auth=integrations)
def connect_leadsforce(request: HttpRequest, slug: str, payload: LeadsforceConnectIn) -> dict:
    """Connect with an API key: checked against Leadsforce first (422 `leadsforce_rejected`, 502
    `leadsforce_unavailable`), then stored encrypted."""
    integration = leadsforce_connect(
        organization=request.org.organization, actor=request_actor(request), api_key=payload.api_key
    )
    return leadsforce_out(integration)


@router.delete("/{slug}/integrations/leadsforce", response={204: None}, auth=integrations)
def disconnect_leadsforce(request: HttpRequest, slug: str) -> Status:
    """Disconnect and forget the API key (imported leads stay)."""
    leadsforce_disconnect(organization=request.org.organization, actor=request_actor(request))
    return Status(204, None)


@router.post("/{slug}/integrations/leadsforce/sync", response={202: dict}, auth=integrations)
def sync_leadsforce(request: HttpRequest, slug: str) -> Status:
    """Import Leadsforce leads into this organization's leads, in a job (idempotent on the Leadsforce id)."""
    leadsforce_sync_request(organization=request.org.organization)
    return Status(202, {"status": "queued"})
