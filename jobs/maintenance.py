"""Periodic maintenance actors, enqueued by `manage.py scheduler`. Each is idempotent and safe to run twice."""

import logging
from datetime import timedelta

import dramatiq
from django.conf import settings
from django.utils import timezone

from jobs.provisioning import refill_spare_schemas
from public_app.cache import cache_add_or_true as _cache_add
from public_app.models import (
    IdempotencyRecord,
    Invitation,
    InvitationStatus,
    Organization,
    OrganizationStatus,
    SlugRedirect,
)
from public_app.outbox import enqueue
from public_app.services.organizations import organization_purge
from public_app.tenancy import tenant_context

logger = logging.getLogger(__name__)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def purge_expired_organizations() -> None:
    due = Organization.objects.filter(status=OrganizationStatus.DELETING, purge_at__lte=timezone.now())
    for organization_id in due.values_list("id", flat=True)[:500]:
        enqueue("purge_organization", organization_id, organization_id=organization_id, unique=True)


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
    stuck_since = timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_SECONDS)
    stuck = Organization.objects.filter(status=OrganizationStatus.PROVISIONING, updated_at__lte=stuck_since)
    for organization in stuck[:500]:
        logger.warning("re-enqueueing provisioning of %s (stuck since %s)", organization.slug, organization.updated_at)
        # Touch it so the next tick does not enqueue it again while this attempt runs.
        Organization.objects.filter(id=organization.id).update(updated_at=timezone.now())
        enqueue("provision_organization", organization.id, organization=organization, unique=True)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def delete_expired_slug_redirects() -> None:
    SlugRedirect.objects.filter(expires_at__lte=timezone.now()).delete()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def delete_expired_idempotency_records() -> None:
    IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - timedelta(hours=24)).delete()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def redrive_lost_jobs() -> None:
    """Re-send the jobs whose work is still undone in the database, in case their message was lost (a broker
    restart without persistence, a deleted queue). Every actor re-checks the state, so a message that was merely
    slow costs a no-op."""
    from django.db.models import Count, F

    from public_app.models import BillingAccount, StripeEvent
    from public_app.services.billing import HANDLED_EVENTS, PAID_STATUSES

    cutoff = timezone.now() - timedelta(seconds=settings.REDRIVE_AFTER_SECONDS)
    for invitation_id, version in Invitation.objects.filter(
        status=InvitationStatus.PENDING, expires_at__gt=timezone.now(), email_sent_version__lt=F("token_version"),
        updated_at__lt=cutoff,
    ).values_list("id", "token_version")[:500]:  # fmt: skip
        enqueue("send_invitation_email", invitation_id, version, unique=True)
    for event_id in StripeEvent.objects.filter(
        processed_at__isnull=True, type__in=HANDLED_EVENTS, received_at__lt=cutoff
    ).values_list("id", flat=True)[:500]:
        enqueue("process_stripe_event", event_id, unique=True)
    drifting = (
        BillingAccount.objects.exclude(stripe_subscription_item_id="")
        .filter(updated_at__lt=cutoff, subscription_status__in=PAID_STATUSES)
        .annotate(members=Count("organization__memberships"))
        .exclude(members=F("seats_billed"), seats_pending__isnull=True)
    )
    for organization_id in drifting.values_list("organization_id", flat=True)[:500]:
        enqueue("sync_billing_seats", organization_id, organization_id=organization_id, unique=True)
    # Webhook deliveries live in every tenant schema: one small job per organization, at most every
    # WEBHOOK_REDRIVE_INTERVAL_SECONDS (a cache outage makes it every tick, which is only more work).
    if _cache_add("redrive-webhooks", settings.WEBHOOK_REDRIVE_INTERVAL_SECONDS):
        active = Organization.objects.filter(status=OrganizationStatus.ACTIVE)
        for organization_id in active.values_list("id", flat=True):
            enqueue("redrive_webhook_deliveries", organization_id, organization_id=organization_id, unique=True)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def redrive_webhook_deliveries(organization_id: int) -> None:
    """Inside one organization's schema: deliveries due for more than REDRIVE_AFTER get their message again."""
    from django.db.models import Q

    from tenant_apps.webhooks.models import DeliveryStatus, WebhookDelivery

    organization = Organization.objects.filter(id=organization_id).first()
    if organization is None:
        return
    cutoff = timezone.now() - timedelta(seconds=settings.REDRIVE_AFTER_SECONDS)
    with tenant_context(organization):
        due = list(WebhookDelivery.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=timezone.now()),
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__lt=cutoff,
        ).values_list("id", flat=True)[:500])  # fmt: skip
    for delivery_id in due:
        enqueue("deliver_webhook", organization_id, delivery_id, organization=organization, unique=True)


PERIODIC = (
    redrive_lost_jobs,
    purge_expired_organizations,
    expire_invitations,
    requeue_stuck_provisioning,
    delete_expired_slug_redirects,
    delete_expired_idempotency_records,
    refill_spare_schemas,
)


@dramatiq.actor(queue_name="maintenance", max_retries=20, min_backoff=1000, max_backoff=30_000)
def replay_cache_invalidations(keys: list[str]) -> None:
    """Invalidations a cache outage swallowed, replayed once it is back (public_app.cache)."""
    from public_app.cache import invalidations_replay

    invalidations_replay(keys)
