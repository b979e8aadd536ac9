"""Writing audit entries. Called by services inside their own transaction, so the entry commits with the change."""

from typing import Any

from public_app.access import Access
from public_app.models import Organization
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry


def audit_record(
    *,
    organization: Organization,
    access: Access,
    action: str,
    target_type: str,
    target_id: str = "",
    target_label: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    actor_type, actor_id, actor_label = access.identity
    with tenant_context(organization):
        return AuditEntry.objects.create(
            actor_type=actor_type,
            actor_id=actor_id,
            actor_label=actor_label[:254],
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label[:254],
            ip=access.ip,
            data=data or {},
        )
