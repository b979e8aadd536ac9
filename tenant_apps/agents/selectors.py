"""Reads; the connection is already on the organization's schema (access.org_endpoint(tenant_schema=True))."""

from django.db.models import QuerySet

from public_app import errors
from tenant_apps.agents.models import Agent


def agent_list(*, status: str | None = None) -> QuerySet[Agent]:
    queryset = Agent.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    return queryset


def agent_get(*, agent_id: str) -> Agent:
    if not agent_id.isdigit() or len(agent_id) > 18:
        raise errors.NotFound("Agent not found.")
    agent = Agent.objects.filter(id=int(agent_id)).first()
    if agent is None:
        raise errors.NotFound("Agent not found.")
    return agent
