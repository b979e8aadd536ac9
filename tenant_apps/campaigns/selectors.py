from datetime import datetime

from django.db.models import QuerySet

from tenant_apps.campaigns.models import Campaign
from tenant_apps.common import AGENT, CAMPAIGN, filter_by_reference, filter_created_after, get_or_404


def campaign_list(
    *, status: str | None = None, agent_id: str | None = None, created_after: datetime | None = None
) -> QuerySet[Campaign]:
    queryset = filter_created_after(Campaign.objects.select_related("agent"), created_after)
    if status:
        queryset = queryset.filter(status=status)
    return filter_by_reference(queryset, "agent", agent_id, AGENT)


def campaign_get(*, campaign_id: str) -> Campaign:
    return get_or_404(Campaign.objects.select_related("agent"), campaign_id, CAMPAIGN)
