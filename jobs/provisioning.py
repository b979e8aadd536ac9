"""Provisioning actors: create an organization's schema; give up (status `failed`) after the last retry."""

import contextlib

import dramatiq
from django.conf import settings

from public_app.models import Organization, OrganizationStatus
from public_app.services.organizations import organization_mark_failed, organization_note_attempt_failed
from public_app.services.provisioning import error_summary, organization_provision, spares_refill


@dramatiq.actor(queue_name="provisioning", max_retries=3)
def provisioning_gave_up(message: dict, retry_info: dict) -> None:
    """Called by the Retries middleware once `provision_organization` has used every retry."""
    organization_id = message["args"][0]
    organization = Organization.objects.filter(id=organization_id).first()
    if organization is not None and organization.status == OrganizationStatus.PROVISIONING:
        # The last attempt's error as provision_organization recorded it (the traceback's last line is often a
        # DETAIL line, not the error).
        traceback = (message.get("options") or {}).get("traceback") or ""
        reason = organization.status_reason or (traceback.strip().splitlines() or ["provisioning failed"])[-1]
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
    try:
        organization_provision(organization_id=organization_id)
    except Exception as exc:
        with contextlib.suppress(Exception):  # the database may be what failed; the retry is what matters
            organization_note_attempt_failed(organization_id=organization_id, reason=error_summary(exc))
        raise


@dramatiq.actor(queue_name="provisioning", max_retries=3)
def refill_spare_schemas() -> None:
    """Keep TENANT_SPARE_SCHEMAS ready-made schemas for the next organizations (after each claim, and on a timer)."""
    spares_refill()
