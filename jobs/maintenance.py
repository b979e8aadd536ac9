"""Periodic maintenance actors, enqueued by `manage.py scheduler`. Each is idempotent and safe to run twice."""

import logging
from datetime import timedelta

import dramatiq
from django.conf import settings
from django.utils import timezone

from public_app.models import (
    IdempotencyRecord,
    Invitation,
    InvitationStatus,
    Organization,
    OrganizationStatus,
    SlugRedirect,
)
from public_app.services.organizations import organization_purge

logger = logging.getLogger(__name__)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def purge_expired_organizations() -> None:
    due = Organization.objects.filter(status=OrganizationStatus.DELETING, purge_at__lte=timezone.now())
    for organization_id in due.values_list("id", flat=True)[:500]:
        purge_organization.send(organization_id)


@dramatiq.actor(queue_name="maintenance", max_retries=5, min_backoff=30_000)
def purge_organization(organization_id: int) -> None:
    if organization_purge(organization_id=organization_id):
        logger.info("purged organization %s", organization_id)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def expire_invitations() -> None:
    Invitation.objects.filter(status=InvitationStatus.PENDING, expires_at__lte=timezone.now()).update(
        status=InvitationStatus.EXPIRED, updated_at=timezone.now()
    )


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def requeue_stuck_provisioning() -> None:
    from jobs.provisioning import provision_organization

    stuck_since = timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_SECONDS)
    stuck = Organization.objects.filter(status=OrganizationStatus.PROVISIONING, updated_at__lte=stuck_since)
    for organization in stuck[:500]:
        logger.warning("re-enqueueing provisioning of %s (stuck since %s)", organization.slug, organization.updated_at)
        # Touch it so the next tick does not enqueue it again while this attempt runs.
        Organization.objects.filter(id=organization.id).update(updated_at=timezone.now())
        provision_organization.send(organization.id)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def delete_expired_slug_redirects() -> None:
    SlugRedirect.objects.filter(expires_at__lte=timezone.now()).delete()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def delete_expired_idempotency_records() -> None:
    IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - timedelta(hours=24)).delete()


PERIODIC = (
    purge_expired_organizations,
    expire_invitations,
    requeue_stuck_provisioning,
    delete_expired_slug_redirects,
    delete_expired_idempotency_records,
)
