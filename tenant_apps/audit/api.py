"""GET .../audit-log (owners and admins): every membership, invitation, settings, billing, API key, webhook and
integration change, newest first."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from public_app.access import Capability
from public_app.api.security import OrgAuth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.audit.models import AuditEntry

router = Router(tags=["audit log"])


class AuditFilters(Schema):
    action: str | None = Field(None, max_length=64, description="e.g. `member.removed`")
    actor: str | None = Field(None, max_length=64, description="Actor id (`usr_…` or `key_…`).")


class ActorOut(Schema):
    type: str
    id: str
    label: str


class TargetOut(Schema):
    type: str
    id: str
    label: str


class AuditEntryOut(Schema):
    id: str
    actor: ActorOut
    action: str
    target: TargetOut
    ip: str | None
    data: dict
    created_at: datetime


def entry_out(entry: AuditEntry) -> dict:
    return {
        "id": str(entry.id),
        "actor": {"type": entry.actor_type, "id": entry.actor_id, "label": entry.actor_label},
        "action": entry.action,
        "target": {"type": entry.target_type, "id": entry.target_id, "label": entry.target_label},
        "ip": entry.ip,
        "data": entry.data,
        "created_at": entry.created_at,
    }


@router.get(
    "/{slug}/audit-log",
    response=Page[AuditEntryOut],
    auth=OrgAuth(Capability.AUDIT_READ, tenant_schema=True),
)
def list_audit_log(request: HttpRequest, slug: str, page: Query[PageQuery], filters: Query[AuditFilters]) -> dict:
    """The audit log, newest first; filter by `action` and `actor`."""
    queryset = AuditEntry.objects.all()
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.actor:
        queryset = queryset.filter(actor_id=filters.actor)
    return paginate(queryset, page, entry_out)
