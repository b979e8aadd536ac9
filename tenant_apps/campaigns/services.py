from typing import Any

from django.db import transaction

from public_app import errors
from public_app.access import Access
from public_app.events import Target, happened
from tenant_apps.agents.models import Agent
from tenant_apps.campaigns.models import Campaign
from tenant_apps.common import AGENT, reference_or_422, save_existing


def _check_window(campaign: Campaign) -> None:
    if campaign.starts_at and campaign.ends_at and campaign.ends_at < campaign.starts_at:
        raise errors.ValidationFailed.for_field("ends_at", "The end must not be before the start.")


def campaign_create(*, data: dict[str, Any]) -> Campaign:
    campaign = Campaign(
        name=data["name"],
        status=data["status"],
        agent=reference_or_422(Agent.objects.all(), data.get("agent_id"), "agent_id", AGENT),
        starts_at=data.get("starts_at"),
        ends_at=data.get("ends_at"),
    )
    _check_window(campaign)
    campaign.save()
    return campaign


def campaign_update(*, campaign: Campaign, changes: dict[str, Any]) -> Campaign:
    """PATCH semantics: absent fields stay; `agent_id`, `starts_at`, `ends_at` may be set to null."""
    for field in ("name", "status"):
        if changes.get(field) is not None:
            setattr(campaign, field, changes[field])
    if "agent_id" in changes:
        campaign.agent = reference_or_422(Agent.objects.all(), changes["agent_id"], "agent_id", AGENT)
    for field in ("starts_at", "ends_at"):
        if field in changes:
            setattr(campaign, field, changes[field])
    _check_window(campaign)
    return save_existing(campaign, "Campaign")


@transaction.atomic
def campaign_delete(*, access: Access, campaign: Campaign) -> None:
    happened(access=access, action="campaign.deleted", target=Target("campaign", campaign.uid, campaign.name))
    campaign.delete()
