"""Provisioning actors: create an organization's schema; give up (status `failed`) after the last retry."""

import dramatiq
from django.conf import settings

from public_app.models import Organization, OrganizationStatus
from public_app.services.organizations import organization_mark_failed
from public_app.services.provisioning import organization_provision, spares_refill


@dramatiq.actor(queue_name="provisioning", max_retries=3)
def provisioning_gave_up(message: dict, retry_info: dict) -> None:
    """Called by the Retries middleware once `provision_organization` has used every retry."""
    organization_id = message["args"][0]
    traceback = (message.get("options") or {}).get("traceback") or ""
    reason = traceback.strip().splitlines()[-1] if traceback.strip() else "provisioning failed"
    organization = Organization.objects.filter(id=organization_id).first()
    if organization is not None and organization.status == OrganizationStatus.PROVISIONING:
        organization_mark_failed(
            organization=organization, reason=f"{reason} (after {retry_info.get('retries', 0) + 1} attempts)"
        )


@dramatiq.actor(
    queue_name="provisioning",
    max_retries=settings.PROVISION_MAX_RETRIES,
    min_backoff=settings.PROVISION_MIN_BACKOFF_MS,
    max_backoff=10 * 60 * 1000,
    on_retry_exhausted=provisioning_gave_up.actor_name,
    time_limit=10 * 60 * 1000,
)
def provision_organization(organization_id: int) -> None:
    organization_provision(organization_id=organization_id)


@dramatiq.actor(queue_name="provisioning", max_retries=3)
def refill_spare_schemas() -> None:
    """Keep TENANT_SPARE_SCHEMAS ready-made schemas for the next organizations (after each claim, and on a timer)."""
    spares_refill()
