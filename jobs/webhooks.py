"""Webhook delivery actor. Retries follow WEBHOOK_RETRY_SCHEDULE (recorded on the delivery row), not Dramatiq's
exponential backoff, so `max_retries=0` here; a crash mid-attempt leaves the message unacknowledged and the broker
redelivers it. Bulk work: priority 10 puts emails and provisioning first where one worker does everything."""

import dramatiq

from public_app.models import Organization
from public_app.tenancy import tenant_context
from tenant_apps.webhooks.services.deliveries import delivery_attempt


@dramatiq.actor(queue_name="webhooks", max_retries=0, time_limit=5 * 60 * 1000, priority=10)
def deliver_webhook(organization_id: int, delivery_id: int) -> None:
    organization = Organization.objects.filter(id=organization_id).first()
    if organization is None:
        return
    with tenant_context(organization):
        delivery_attempt(organization=organization, delivery_id=delivery_id)
