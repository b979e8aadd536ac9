from django.db import models

from public_app import ids
from public_app.models import TimestampedModel
from tenant_apps.campaigns.models import Campaign


class LeadStatus(models.TextChoices):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    LOST = "lost"


class LeadSource(models.TextChoices):
    MANUAL = "manual"
    IMPORT = "import"
    LEADSFORCE = "leadsforce"
    API = "api"


class Lead(TimestampedModel):
    uid = models.CharField(max_length=40, unique=True, default=ids.lead_uid, editable=False)
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.NEW)
    campaign = models.ForeignKey(Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="leads")
    source = models.CharField(max_length=16, choices=LeadSource.choices, default=LeadSource.MANUAL)
    # The lead's id at its source (Leadsforce); re-imports update instead of duplicating.
    external_id = models.CharField(max_length=100, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-id"], name="lead_status_id_idx"),
            models.Index(fields=["campaign", "-id"], name="lead_campaign_id_idx"),
            models.Index(fields=["created_at"], name="lead_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~models.Q(external_id=""),
                name="lead_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email
