"""Periodic maintenance actors, enqueued by `manage.py scheduler`: each loads what it needs by id and calls one
service (public_app.services.maintenance holds the queries). Each is idempotent and safe to run twice."""

import logging

import dramatiq

from jobs.provisioning import refill_spare_schemas
from public_app.models import Organization
from public_app.services import maintenance
from public_app.services.organizations import organization_purge
from tenant_apps.webhooks.services.deliveries import deliveries_redrive

logger = logging.getLogger(__name__)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def purge_expired_organizations() -> None:
    maintenance.expired_organizations_purge_request()


@dramatiq.actor(queue_name="maintenance", max_retries=5, min_backoff=30_000)
def purge_organization(organization_id: int) -> None:
    if organization_purge(organization_id=organization_id):
        logger.info("purged organization %s", organization_id)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def expire_invitations() -> None:
    maintenance.invitations_expire()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def requeue_stuck_provisioning() -> None:
    maintenance.stuck_provisioning_requeue()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def delete_expired_slug_redirects() -> None:
    maintenance.slug_redirects_delete_expired()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def delete_expired_idempotency_records() -> None:
    maintenance.idempotency_records_delete_expired()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def redrive_lost_jobs() -> None:
    maintenance.lost_jobs_redrive()


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def redrive_webhook_deliveries(organization_id: int) -> None:
    organization = Organization.objects.filter(id=organization_id).first()
    if organization is not None:
        deliveries_redrive(organization=organization)


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
