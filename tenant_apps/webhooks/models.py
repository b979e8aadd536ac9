"""Webhook endpoints, deliveries and attempts, in the organization's own schema."""

from enum import StrEnum

from django.db import models

from public_app import ids
from public_app.models import TimestampedModel


class EventType(StrEnum):
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_DEACTIVATED = "member.deactivated"
    MEMBER_REACTIVATED = "member.reactivated"
    JOIN_REQUEST_CREATED = "join_request.created"
    JOIN_REQUEST_APPROVED = "join_request.approved"
    JOIN_REQUEST_DECLINED = "join_request.declined"
    ROLE_CREATED = "role.created"
    ROLE_UPDATED = "role.updated"
    ROLE_DELETED = "role.deleted"
    DOMAIN_CREATED = "domain.created"
    DOMAIN_VERIFIED = "domain.verified"
    DOMAIN_UPDATED = "domain.updated"
    DOMAIN_DELETED = "domain.deleted"
    INVITATION_CREATED = "invitation.created"
    INVITATION_ACCEPTED = "invitation.accepted"
    ORGANIZATION_UPDATED = "organization.updated"
    SUBSCRIPTION_UPDATED = "subscription.updated"
    LEAD_CREATED = "lead.created"
    PING = "ping"


EVENT_TYPES = tuple(event.value for event in EventType)


# Defaults named by migration 0001; endpoints made before issue 16 have `we_` ids (ids.WEBHOOK_LEGACY) and keep them.
def endpoint_uid() -> str:
    return ids.new_uid(ids.WEBHOOK)


def event_uid() -> str:
    return ids.new_uid(ids.EVENT)


def delivery_uid() -> str:
    return ids.new_uid(ids.WEBHOOK_DELIVERY)


class WebhookEndpoint(TimestampedModel):
    uid = models.CharField(max_length=40, unique=True, default=endpoint_uid, editable=False)
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    secret_encrypted = models.TextField()
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # Start of the current run of failures; cleared by any success. Too long → the endpoint is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint. `event_id` is the `webhook-id` of every attempt, so receivers can dedupe."""

    uid = models.CharField(max_length=40, unique=True, default=delivery_uid, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=64)
    payload = models.TextField()  # the exact JSON body that is signed and sent
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # An attempt in flight holds the delivery until then; a duplicate message meanwhile does nothing.
    locked_until = models.DateTimeField(null=True, blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["endpoint", "-id"], name="delivery_endpoint_id_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    response_status = models.IntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
