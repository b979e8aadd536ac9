"""Agents CRUD under /api/v1/organizations/{slug}/agents (tenant data: owner, admin, member)."""

from ninja import Query, Router, Status

from public_app.api.common import AuthedRequest
from public_app.api.security import tenant_data_auth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.agents.models import Agent
from tenant_apps.agents.schemas import AgentCreateIn, AgentFilters, AgentOut, AgentUpdateIn
from tenant_apps.agents.selectors import agent_get, agent_list
from tenant_apps.agents.services import agent_create, agent_delete, agent_update

router = Router(tags=["Agents"], auth=tenant_data_auth())


@router.get("/{slug}/agents", response=Page[AgentOut])
def list_agents(request: AuthedRequest, slug: str, page: Query[PageQuery], filters: Query[AgentFilters]) -> dict:
    """List agents, newest first; filter by `status`."""
    return paginate(agent_list(status=filters.status), page)


@router.post("/{slug}/agents", response={201: AgentOut})
def create_agent(request: AuthedRequest, slug: str, payload: AgentCreateIn) -> Status:
    """Create an agent."""
    return Status(201, agent_create(**payload.dict()))


@router.get("/{slug}/agents/{agent_id}", response=AgentOut)
def get_agent(request: AuthedRequest, slug: str, agent_id: str) -> Agent:
    """One agent."""
    return agent_get(agent_id=agent_id)


@router.patch("/{slug}/agents/{agent_id}", response=AgentOut)
def update_agent(request: AuthedRequest, slug: str, agent_id: str, payload: AgentUpdateIn) -> Agent:
    """Change any of name, status, language, voice, prompt."""
    return agent_update(agent=agent_get(agent_id=agent_id), changes=payload.dict(exclude_unset=True))


@router.delete("/{slug}/agents/{agent_id}", response={204: None})
def delete_agent(request: AuthedRequest, slug: str, agent_id: str) -> Status:
    """Delete an agent (recorded in the audit log)."""
    agent_delete(access=request.auth, agent=agent_get(agent_id=agent_id))
    return Status(204, None)
