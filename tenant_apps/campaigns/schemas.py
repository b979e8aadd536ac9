from datetime import datetime

from ninja import Field, Schema

from public_app.fields import BodyIn, Instant, Name
from tenant_apps.campaigns.models import Campaign, CampaignStatus
from tenant_apps.common import AgentId, CampaignId, CreatedAfterFilter


class CampaignCreateIn(BodyIn):
    name: Name
    status: CampaignStatus = CampaignStatus.DRAFT
    agent_id: AgentId | None = None
    starts_at: Instant | None = None
    ends_at: Instant | None = None


class CampaignUpdateIn(BodyIn):
    name: Name | None = None
    status: CampaignStatus | None = None
    agent_id: AgentId | None = None
    starts_at: Instant | None = None
    ends_at: Instant | None = None


class CampaignOut(Schema):
    id: CampaignId = Field(alias="uid")
    name: str
    status: CampaignStatus
    agent_id: AgentId | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_agent_id(campaign: Campaign) -> str | None:
        return campaign.agent.uid if campaign.agent else None


class CampaignFilters(CreatedAfterFilter):
    status: CampaignStatus | None = None
    agent_id: AgentId | None = Field(None, description="Only campaigns of this agent.")
