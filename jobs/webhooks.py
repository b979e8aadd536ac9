"""Webhook delivery actor. Retries follow WEBHOOK_RETRY_SCHEDULE (recorded on the delivery row), not Dramatiq's
exponential backoff, so `max_retries=0` here; a crash mid-attempt leaves the message unacknowledged and the broker
redelivers it."""

import dramatiq
from django.db import connection

from public_app.models import Organization
from tenant_apps.webhooks.services import delivery_attempt


@dramatiq.actor(queue_name="webhooks", max_retries=0, time_limit=5 * 60 * 1000)
def deliver_webhook(organization_id: int, delivery_id: int) -> None:
    organization = Organization.objects.filter(id=organization_id).first()
    # The tenant middleware put us in the schema named by the message; it must be this organization's.
    if organization is None or connection.schema_name != organization.schema_name:
        return
    delivery_attempt(organization=organization, delivery_id=delivery_id)
