"""Reads; the connection is already on the organization's schema (OrgAuth(tenant_schema=True))."""

from datetime import datetime

from django.db.models import QuerySet

from tenant_apps.common import AGENT, PHONE_NUMBER, filter_by_reference, filter_created_after, get_or_404
from tenant_apps.phone_numbers.models import PhoneNumber


def phone_number_list(*, agent_id: str | None = None, created_after: datetime | None = None) -> QuerySet[PhoneNumber]:
    queryset = filter_created_after(PhoneNumber.objects.select_related("agent"), created_after)
    return filter_by_reference(queryset, "agent", agent_id, AGENT)


def phone_number_get(*, number_id: str) -> PhoneNumber:
    return get_or_404(PhoneNumber.objects.select_related("agent"), number_id, PHONE_NUMBER)
