from datetime import datetime

from django.db.models import QuerySet

from tenant_apps.common import CAMPAIGN, LEAD, filter_by_reference, filter_created_after, get_or_404
from tenant_apps.leads.models import Lead


def lead_list(
    *,
    status: str | None = None,
    campaign_id: str | None = None,
    source: str | None = None,
    created_after: datetime | None = None,
) -> QuerySet[Lead]:
    queryset = filter_created_after(Lead.objects.select_related("campaign"), created_after)
    if status:
        queryset = queryset.filter(status=status)
    if source:
        queryset = queryset.filter(source=source)
    return filter_by_reference(queryset, "campaign", campaign_id, CAMPAIGN)


def lead_get(*, lead_id: str) -> Lead:
    return get_or_404(Lead.objects.select_related("campaign"), lead_id, LEAD)
