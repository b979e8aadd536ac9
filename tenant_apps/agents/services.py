from typing import Any

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


def agent_delete(*, agent: Agent) -> None:
    agent.delete()
