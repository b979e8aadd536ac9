from datetime import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import AfterValidator, StringConstraints

from public_app.fields import BodyIn, ShortText
from tenant_apps.common import CampaignId, CreatedAfterFilter, LeadId
from tenant_apps.leads.models import Lead, LeadSource, LeadStatus

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
Phone = Annotated[str, StringConstraints(pattern=E164_PATTERN)]


def _email(value: str) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    value = value.strip().lower()
    if value:
        try:
            validate_email(value)
        except ValidationError:
            raise ValueError("Enter a valid email address") from None
    return value


Email = Annotated[ShortText, AfterValidator(_email)]


class LeadIn(BodyIn):
    first_name: ShortText = ""
    last_name: ShortText = ""
    email: Email = ""
    phone: Phone | None = Field(None, description="E.164, e.g. +14155550123")
    status: LeadStatus = LeadStatus.NEW
    campaign_id: CampaignId | None = None


class LeadUpdateIn(BodyIn):
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    status: LeadStatus | None = None
    campaign_id: CampaignId | None = None


class LeadOut(Schema):
    id: LeadId = Field(alias="uid")
    first_name: str
    last_name: str
    email: str
    phone: str
    status: LeadStatus
    campaign_id: CampaignId | None
    source: LeadSource
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_campaign_id(lead: Lead) -> str | None:
        return lead.campaign.uid if lead.campaign else None


class LeadFilters(CreatedAfterFilter):
    status: LeadStatus | None = None
    campaign_id: CampaignId | None = Field(None, description="Only leads of this campaign.")
    source: LeadSource | None = None


class ImportResultOut(Schema):
    imported: int
