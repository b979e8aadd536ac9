"""Voice agents. Lives in each organization's own schema (a TENANT_APP): no table here exists in `public`."""

from django.db import models

from public_app import ids
from public_app.models import TimestampedModel


class AgentStatus(models.TextChoices):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class Agent(TimestampedModel):
    uid = models.CharField(max_length=40, unique=True, default=ids.agent_uid, editable=False)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.DRAFT)
    language = models.CharField(max_length=35, default="en-US")
    voice = models.CharField(max_length=200, blank=True)
    prompt = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-id"], name="agent_status_id_idx")]

    def __str__(self) -> str:
        return self.name
