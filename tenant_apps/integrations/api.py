"""Settings → Leadsforce (owners and admins)."""

from datetime import datetime

from ninja import Router, Schema, Status

from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn, LeadsforceKey
from tenant_apps.integrations.models import Integration
from tenant_apps.integrations.services import (
    leadsforce_connect,
    leadsforce_disconnect,
    leadsforce_get,
    leadsforce_sync_request,
)

router = Router(tags=["Leadsforce"], auth=OrgAuth(Capability.INTEGRATIONS, tenant_schema=True))


class LeadsforceConnectIn(BodyIn):
    api_key: LeadsforceKey


class _NotConnected:
    """What LeadsforceOut reads when there is no integration row."""

    account_name = connected_at = last_sync_at = last_sync_error = None


class LeadsforceOut(Schema):
    connected: bool
    account_name: str | None
    connected_at: datetime | None
    last_sync_at: datetime | None
    last_sync_error: str | None

    @staticmethod
    def resolve_connected(obj: Integration | _NotConnected) -> bool:
        return isinstance(obj, Integration)

    @staticmethod
    def resolve_last_sync_error(obj: Integration | _NotConnected) -> str | None:
        return obj.last_sync_error or None


NOT_CONNECTED = _NotConnected()


@router.get("/{slug}/integrations/leadsforce", response=LeadsforceOut)
def get_leadsforce(request: AuthedRequest, slug: str) -> Integration | _NotConnected:
    """Connection status (the API key is never returned)."""
    return leadsforce_get() or NOT_CONNECTED


@router.put("/{slug}/integrations/leadsforce", response=LeadsforceOut)
@may_raise("leadsforce_rejected", "leadsforce_unavailable", "leadsforce_not_configured")
def connect_leadsforce(request: AuthedRequest, slug: str, payload: LeadsforceConnectIn) -> Integration:
    """Connect with an API key: checked against Leadsforce first (422 `leadsforce_rejected`, 502
    `leadsforce_unavailable`), then stored encrypted."""
    return leadsforce_connect(access=request.auth, api_key=payload.api_key)


@router.delete("/{slug}/integrations/leadsforce", response={204: None})
@may_raise("not_found")
def disconnect_leadsforce(request: AuthedRequest, slug: str) -> Status:
    """Disconnect and forget the API key (imported leads stay)."""
    leadsforce_disconnect(access=request.auth)
    return Status(204, None)


@router.post("/{slug}/integrations/leadsforce/sync", response={202: dict})
@may_raise("integration_not_connected")
def sync_leadsforce(request: AuthedRequest, slug: str) -> Status:
    """Import Leadsforce leads into this organization's leads, in a job (idempotent on the Leadsforce id)."""
    leadsforce_sync_request(organization=request.auth.org)
    return Status(202, {"status": "queued"})
