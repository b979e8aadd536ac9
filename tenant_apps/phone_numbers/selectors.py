"""Reads; the connection is already on the organization's schema (OrgAuth(tenant_schema=True))."""

from datetime import datetime

from django.db.models import QuerySet

from tenant_apps.common import filter_by_reference, filter_created_after, get_or_404
from tenant_apps.phone_numbers.models import PhoneNumber


def phone_number_list(*, agent_id: str | None = None, created_after: datetime | None = None) -> QuerySet[PhoneNumber]:
    return filter_by_reference(filter_created_after(PhoneNumber.objects.all(), created_after), "agent_id", agent_id)


def phone_number_get(*, number_id: str) -> PhoneNumber:
    return get_or_404(PhoneNumber.objects.all(), number_id, "Phone number")
