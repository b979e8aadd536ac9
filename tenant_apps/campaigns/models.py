from django.db import models

from public_app import ids
from public_app.models import TimestampedModel
from tenant_apps.agents.models import Agent


class CampaignStatus(models.TextChoices):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"


class Campaign(TimestampedModel):
    uid = models.CharField(max_length=40, unique=True, default=ids.campaign_uid, editable=False)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaigns")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-id"], name="campaign_status_id_idx"),
            models.Index(fields=["agent", "-id"], name="campaign_agent_id_idx"),
            models.Index(fields=["created_at"], name="campaign_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__isnull=True)
                | models.Q(starts_at__isnull=True)
                | models.Q(ends_at__gte=models.F("starts_at")),
                name="campaign_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name
