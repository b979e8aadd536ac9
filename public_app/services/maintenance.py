"""Periodic upkeep, run by the maintenance actors (jobs.maintenance) that the scheduler enqueues. Each function is
idempotent and safe to run twice or concurrently; fan-out goes through the outbox (one small job per item)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F
from django.utils import timezone

from public_app.cache import cache_add_or_true
from public_app.models import (
    BillingAccount,
    IdempotencyRecord,
    Invitation,
    InvitationStatus,
    Organization,
    OrganizationStatus,
    SlugRedirect,
    StripeEvent,
)
from public_app.outbox import enqueue
from public_app.services.billing.accounts import PAID_STATUSES
from public_app.services.billing.subscriptions import HANDLED_EVENTS

logger = logging.getLogger(__name__)
BATCH = 500


def expired_organizations_purge_request() -> int:
    """One purge job per organization whose deletion grace period is over."""
    due = Organization.objects.filter(status=OrganizationStatus.DELETING, purge_at__lte=timezone.now())
    ids = list(due.values_list("id", flat=True)[:BATCH])
    for organization_id in ids:
        enqueue("purge_organization", organization_id, organization_id=organization_id, unique=True)
    return len(ids)


def invitations_expire() -> int:
    return Invitation.objects.filter(status=InvitationStatus.PENDING, expires_at__lte=timezone.now()).update(
        status=InvitationStatus.EXPIRED, updated_at=timezone.now()
    )


def stuck_provisioning_requeue() -> int:
    """Organizations in `provisioning` for longer than PROVISIONING_STUCK_SECONDS get their job again."""
    stuck_since = timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_SECONDS)
    waiting = Organization.objects.filter(status=OrganizationStatus.PROVISIONING, updated_at__lte=stuck_since)
    stuck = list(waiting[:BATCH])
    for organization in stuck:
        logger.warning("re-enqueueing provisioning of %s (stuck since %s)", organization.slug, organization.updated_at)
        # Touch it so the next tick does not enqueue it again while this attempt runs.
        Organization.objects.filter(id=organization.id).update(updated_at=timezone.now())
        enqueue("provision_organization", organization.id, organization=organization, unique=True)
    return len(stuck)


def slug_redirects_delete_expired() -> int:
    return SlugRedirect.objects.filter(expires_at__lte=timezone.now()).delete()[0]


def idempotency_records_delete_expired() -> int:
    return IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - timedelta(hours=24)).delete()[0]


def lost_jobs_redrive() -> None:
    """Re-send the jobs whose work is still undone in the database REDRIVE_AFTER_SECONDS on (a job that gave up
    after its retries, a message lost before the outbox existed). Every actor re-checks the state, so a message
    that was merely slow costs a no-op."""
    cutoff = timezone.now() - timedelta(seconds=settings.REDRIVE_AFTER_SECONDS)
    for invitation_id, version in Invitation.objects.filter(
        status=InvitationStatus.PENDING, expires_at__gt=timezone.now(), email_sent_version__lt=F("token_version"),
        updated_at__lt=cutoff,
    ).values_list("id", "token_version")[:BATCH]:  # fmt: skip
        enqueue("send_invitation_email", invitation_id, version, unique=True)
    for event_id in StripeEvent.objects.filter(
        processed_at__isnull=True, type__in=HANDLED_EVENTS, received_at__lt=cutoff
    ).values_list("id", flat=True)[:BATCH]:
        enqueue("process_stripe_event", event_id, unique=True)
    drifting = (
        BillingAccount.objects.exclude(stripe_subscription_item_id="")
        .filter(updated_at__lt=cutoff, subscription_status__in=PAID_STATUSES)
        .annotate(members=Count("organization__memberships"))
        .exclude(members=F("seats_billed"), seats_pending__isnull=True)
    )
    for organization_id in drifting.values_list("organization_id", flat=True)[:BATCH]:
        enqueue("sync_billing_seats", organization_id, organization_id=organization_id, unique=True)
    # Webhook deliveries live in every tenant schema: one small job per organization, at most every
    # WEBHOOK_REDRIVE_INTERVAL_SECONDS (a cache outage makes it every tick, which is only more work).
    if cache_add_or_true("redrive-webhooks", settings.WEBHOOK_REDRIVE_INTERVAL_SECONDS):
        active = Organization.objects.filter(status=OrganizationStatus.ACTIVE)
        for organization_id in active.values_list("id", flat=True):
            enqueue("redrive_webhook_deliveries", organization_id, organization_id=organization_id, unique=True)
