from datetime import datetime

from ninja import Field, Schema

from public_app.fields import BodyIn, Instant, Name
from tenant_apps.campaigns.models import CampaignStatus
from tenant_apps.common import CreatedAfterFilter, RowId, RowRef


class CampaignCreateIn(BodyIn):
    name: Name
    status: CampaignStatus = CampaignStatus.DRAFT
    agent_id: str | None = Field(None, max_length=20)
    starts_at: Instant | None = None
    ends_at: Instant | None = None


class CampaignUpdateIn(BodyIn):
    name: Name | None = None
    status: CampaignStatus | None = None
    agent_id: str | None = Field(None, max_length=20)
    starts_at: Instant | None = None
    ends_at: Instant | None = None


class CampaignOut(Schema):
    id: RowId
    name: str
    status: CampaignStatus
    agent_id: RowRef
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignFilters(CreatedAfterFilter):
    status: CampaignStatus | None = None
    agent_id: str | None = Field(None, max_length=20)
