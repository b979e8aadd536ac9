from django.db import models

from public_app import ids
from public_app.models import TimestampedModel
from tenant_apps.agents.models import Agent


class PhoneNumber(TimestampedModel):
    uid = models.CharField(max_length=40, unique=True, default=ids.phone_number_uid, editable=False)
    e164 = models.CharField(max_length=16, unique=True)
    label = models.CharField(max_length=200, blank=True)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="phone_numbers")

    class Meta:
        indexes = [models.Index(fields=["agent", "-id"], name="phone_agent_id_idx")]

    def __str__(self) -> str:
        return self.e164
