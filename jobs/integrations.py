"""Integration actors. A failed Leadsforce sync (network, 5xx, 429) is retried with backoff; pages already
imported are skipped by their Leadsforce id."""

import dramatiq

from public_app.models import Organization, OrganizationStatus
from public_app.tenancy import tenant_context
from tenant_apps.integrations.services import leadsforce_sync


@dramatiq.actor(
    queue_name="integrations", max_retries=6, min_backoff=10_000, time_limit=30 * 60 * 1000, priority=10
)
def sync_leadsforce(organization_id: int) -> None:
    organization = Organization.objects.filter(id=organization_id, status=OrganizationStatus.ACTIVE).first()
    if organization is None:
        return
    with tenant_context(organization):
        leadsforce_sync(organization=organization)
