"""Agents CRUD under /api/v1/organizations/{slug}/agents (tenant data: owner, admin, member)."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from public_app.access import Capability
from public_app.api.security import OrgAuth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.agents.models import Agent
from tenant_apps.agents.schemas import AgentCreateIn, AgentFilters, AgentOut, AgentUpdateIn
from tenant_apps.agents.selectors import agent_get, agent_list
from tenant_apps.agents.services import agent_create, agent_delete, agent_update

router = Router(tags=["agents"])
tenant_data = OrgAuth(Capability.TENANT_DATA, tenant_schema=True)


def agent_out(agent: Agent) -> dict:
    return {
        "id": str(agent.id),
        "name": agent.name,
        "status": agent.status,
        "language": agent.language,
        "voice": agent.voice,
        "prompt": agent.prompt,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


@router.get("/{slug}/agents", response=Page[AgentOut], auth=tenant_data)
def list_agents(request: HttpRequest, slug: str, page: Query[PageQuery], filters: Query[AgentFilters]) -> dict:
    """List agents, newest first; filter by `status`."""
    return paginate(agent_list(status=filters.status), page, agent_out)


@router.post("/{slug}/agents", response={201: AgentOut}, auth=tenant_data)
def create_agent(request: HttpRequest, slug: str, payload: AgentCreateIn) -> Status:
    """Create an agent."""
    return Status(201, agent_out(agent_create(**payload.dict())))


@router.get("/{slug}/agents/{agent_id}", response=AgentOut, auth=tenant_data)
def get_agent(request: HttpRequest, slug: str, agent_id: str) -> dict:
    """One agent."""
    return agent_out(agent_get(agent_id=agent_id))


@router.patch("/{slug}/agents/{agent_id}", response=AgentOut, auth=tenant_data)
def update_agent(request: HttpRequest, slug: str, agent_id: str, payload: AgentUpdateIn) -> dict:
    """Change any of name, status, language, voice, prompt."""
    agent = agent_get(agent_id=agent_id)
    return agent_out(agent_update(agent=agent, changes=payload.dict(exclude_unset=True)))


@router.delete("/{slug}/agents/{agent_id}", response={204: None}, auth=tenant_data)
def delete_agent(request: HttpRequest, slug: str, agent_id: str) -> Status:
    """Delete an agent."""
    agent_delete(agent=agent_get(agent_id=agent_id))
    return Status(204, None)
