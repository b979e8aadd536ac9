"""Campaigns CRUD under /api/v1/organizations/{slug}/campaigns (tenant data: owner, admin, member)."""

from ninja import Query, Router, Status

from public_app.api.common import AuthedRequest
from public_app.api.security import tenant_data_auth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.campaigns.models import Campaign
from tenant_apps.campaigns.schemas import CampaignCreateIn, CampaignFilters, CampaignOut, CampaignUpdateIn
from tenant_apps.campaigns.selectors import campaign_get, campaign_list
from tenant_apps.campaigns.services import campaign_create, campaign_delete, campaign_update

router = Router(tags=["Campaigns"], auth=tenant_data_auth())


@router.get("/{slug}/campaigns", response=Page[CampaignOut])
def list_campaigns(request: AuthedRequest, slug: str, page: Query[PageQuery], filters: Query[CampaignFilters]) -> dict:
    """List campaigns, newest first; filter by `status`, `agent_id`, `created_after`."""
    return paginate(campaign_list(**filters.dict()), page)


@router.post("/{slug}/campaigns", response={201: CampaignOut})
def create_campaign(request: AuthedRequest, slug: str, payload: CampaignCreateIn) -> Status:
    """Create a campaign; `agent_id` must be an agent of this organization."""
    return Status(201, campaign_create(data=payload.dict()))


@router.get("/{slug}/campaigns/{campaign_id}", response=CampaignOut)
def get_campaign(request: AuthedRequest, slug: str, campaign_id: str) -> Campaign:
    """One campaign."""
    return campaign_get(campaign_id=campaign_id)


@router.patch("/{slug}/campaigns/{campaign_id}", response=CampaignOut)
def update_campaign(request: AuthedRequest, slug: str, campaign_id: str, payload: CampaignUpdateIn) -> Campaign:
    """Change any field; `agent_id`, `starts_at`, `ends_at` accept null."""
    return campaign_update(campaign=campaign_get(campaign_id=campaign_id), changes=payload.dict(exclude_unset=True))


@router.delete("/{slug}/campaigns/{campaign_id}", response={204: None})
def delete_campaign(request: AuthedRequest, slug: str, campaign_id: str) -> Status:
    """Delete a campaign; its leads stay, without a campaign (recorded in the audit log)."""
    campaign_delete(access=request.auth, campaign=campaign_get(campaign_id=campaign_id))
    return Status(204, None)
