"""Reads; the connection is already on the organization's schema (OrgAuth(tenant_schema=True))."""

from django.db.models import QuerySet

from tenant_apps.agents.models import Agent
from tenant_apps.common import AGENT, get_or_404


def agent_list(*, status: str | None = None) -> QuerySet[Agent]:
    queryset = Agent.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    return queryset


def agent_get(*, agent_id: str) -> Agent:
    return get_or_404(Agent.objects.all(), agent_id, AGENT)
