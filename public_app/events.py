"""Something happened to an organization: the one entry point every domain change goes through.

`happened` writes the audit entry (who, what, on what, from where) and, when the action is one of the webhook event
types (tenant_apps.webhooks.models.EVENT_TYPES), emits that event to the subscribed endpoints, inside the caller's
transaction (deliveries are enqueued on commit). Services never call the audit log or the webhook fan-out directly,
so a change cannot be audited without its event or the other way round.
"""

from dataclasses import dataclass
from typing import Any

from public_app.access import Access
from public_app.models import Organization
from tenant_apps.audit.services import audit_record
from tenant_apps.webhooks.models import EVENT_TYPES
from tenant_apps.webhooks.services.events import event_emit


@dataclass(frozen=True)
class Target:
    """What a change was made to, as the audit log names it."""

    type: str
    id: str = ""
    label: str = ""


def happened(
    *,
    access: Access,
    action: str,
    target: Target,
    organization: Organization | None = None,
    data: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    audit: bool = True,
) -> None:
    """Record `action` (e.g. `member.removed`) by `access` on `target` in `organization` (default: the caller's).

    `data` goes in the audit entry; `event` is the webhook payload's `data` (default: `data`). `audit=False` only
    for high-volume data events (each imported lead), whose batch is audited once by its caller."""
    organization = organization or access.org
    if audit:
        audit_record(organization=organization, access=access, action=action, target_type=target.type,
                     target_id=target.id, target_label=target.label, data=data)  # fmt: skip
    if action in EVENT_TYPES:
        event_emit(organization=organization, event_type=action, data=event if event is not None else data or {})
