"""GET .../audit-log (owners and admins): every membership, invitation, settings, billing, API key, webhook and
integration change, and every deletion of tenant data, newest first."""

from datetime import datetime
from typing import Literal

from ninja import Field, Query, Router, Schema

from public_app.access import Capability
from public_app.api.common import AuthedRequest
from public_app.api.security import OrgAuth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.audit.models import AuditEntry
from tenant_apps.common import AuditEntryId

router = Router(tags=["Audit log"], auth=OrgAuth(Capability.AUDIT_READ, tenant_schema=True))


class AuditFilters(Schema):
    action: str | None = Field(None, max_length=64, description="e.g. `member.removed`")
    actor: str | None = Field(None, max_length=64, description="Actor id (`usr_…` or `key_…`).")


class ActorOut(Schema):
    type: Literal["user", "api_key", "system", "directory"]
    id: str
    label: str


class TargetOut(Schema):
    type: str
    id: str
    label: str


class AuditEntryOut(Schema):
    id: AuditEntryId = Field(alias="uid")
    actor: ActorOut
    action: str
    target: TargetOut
    ip: str | None
    data: dict
    created_at: datetime

    @staticmethod
    def resolve_actor(entry: AuditEntry) -> dict:
        return {"type": entry.actor_type, "id": entry.actor_id, "label": entry.actor_label}

    @staticmethod
    def resolve_target(entry: AuditEntry) -> dict:
        return {"type": entry.target_type, "id": entry.target_id, "label": entry.target_label}


@router.get("/{slug}/audit-log", response=Page[AuditEntryOut])
def list_audit_log(request: AuthedRequest, slug: str, page: Query[PageQuery], filters: Query[AuditFilters]) -> dict:
    """The audit log, newest first; filter by `action` and `actor`."""
    queryset = AuditEntry.objects.all()
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.actor:
        queryset = queryset.filter(actor_id=filters.actor)
    return paginate(queryset, page)
