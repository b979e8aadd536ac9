"""Campaigns CRUD under /api/v1/organizations/{slug}/campaigns (tenant data: owner, admin, member)."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from public_app.access import Capability
from public_app.api.security import OrgAuth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.campaigns.models import Campaign
from tenant_apps.campaigns.schemas import CampaignCreateIn, CampaignFilters, CampaignOut, CampaignUpdateIn
from tenant_apps.campaigns.selectors import campaign_list
from tenant_apps.campaigns.services import campaign_create, campaign_update
from tenant_apps.common import get_or_404, str_id

router = Router(tags=["campaigns"])
tenant_data = OrgAuth(Capability.TENANT_DATA, tenant_schema=True)


def campaign_out(campaign: Campaign) -> dict:
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "status": campaign.status,
        "agent_id": str_id(campaign.agent_id),
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
    }


@router.get("/{slug}/campaigns", response=Page[CampaignOut], auth=tenant_data)
def list_campaigns(request: HttpRequest, slug: str, page: Query[PageQuery], filters: Query[CampaignFilters]) -> dict:
    """List campaigns, newest first; filter by `status`, `agent_id`, `created_after`."""
    return paginate(campaign_list(**filters.dict()), page, campaign_out)


@router.post("/{slug}/campaigns", response={201: CampaignOut}, auth=tenant_data)
def create_campaign(request: HttpRequest, slug: str, payload: CampaignCreateIn) -> Status:
    """Create a campaign; `agent_id` must be an agent of this organization."""
    return Status(201, campaign_out(campaign_create(data=payload.dict())))


@router.get("/{slug}/campaigns/{campaign_id}", response=CampaignOut, auth=tenant_data)
def get_campaign(request: HttpRequest, slug: str, campaign_id: str) -> dict:
    """One campaign."""
    return campaign_out(get_or_404(Campaign.objects.all(), campaign_id, "Campaign"))


@router.patch("/{slug}/campaigns/{campaign_id}", response=CampaignOut, auth=tenant_data)
def update_campaign(request: HttpRequest, slug: str, campaign_id: str, payload: CampaignUpdateIn) -> dict:
    """Change any field; `agent_id`, `starts_at`, `ends_at` accept null."""
    campaign = get_or_404(Campaign.objects.all(), campaign_id, "Campaign")
    return campaign_out(campaign_update(campaign=campaign, changes=payload.dict(exclude_unset=True)))


@router.delete("/{slug}/campaigns/{campaign_id}", response={204: None}, auth=tenant_data)
def delete_campaign(request: HttpRequest, slug: str, campaign_id: str) -> Status:
    """Delete a campaign; its leads stay, without a campaign."""
    get_or_404(Campaign.objects.all(), campaign_id, "Campaign").delete()
    return Status(204, None)
