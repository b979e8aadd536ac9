from typing import Any

from django.db import transaction

from public_app.access import Access
from public_app.events import Target, happened
from tenant_apps.agents.models import Agent
from tenant_apps.common import save_existing

_UPDATABLE = ("name", "status", "language", "voice", "prompt")


def agent_create(*, name: str, status: str, language: str, voice: str, prompt: str) -> Agent:
    return Agent.objects.create(name=name, status=status, language=language, voice=voice, prompt=prompt)


def agent_update(*, agent: Agent, changes: dict[str, Any]) -> Agent:
    fields = [field for field in _UPDATABLE if field in changes and changes[field] is not None]
    for field in fields:
        setattr(agent, field, changes[field])
    if fields:
        save_existing(agent, "Agent")
    return agent


@transaction.atomic
def agent_delete(*, access: Access, agent: Agent) -> None:
    happened(access=access, action="agent.deleted", target=Target("agent", agent.uid, agent.name))
    agent.delete()
