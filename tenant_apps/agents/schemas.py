from datetime import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import StringConstraints

from public_app.fields import BodyIn, LongText, Name, RowOut, ShortText
from tenant_apps.agents.models import AgentStatus
from tenant_apps.common import AgentId

# BCP 47 language tag, the common shapes: language[-script][-region] (e.g. "en", "en-US", "zh-Hant-TW").
Language = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z]{4})?(-([a-zA-Z]{2}|[0-9]{3}))?$")]


class AgentCreateIn(BodyIn):
    name: Name
    status: AgentStatus = AgentStatus.DRAFT
    language: Language = "en-US"
    voice: ShortText = ""
    prompt: LongText = ""


class AgentUpdateIn(BodyIn):
    name: Name | None = None
    status: AgentStatus | None = None
    language: Language | None = None
    voice: ShortText | None = None
    prompt: LongText | None = None


class AgentOut(RowOut):
    id: AgentId = Field(alias="uid")
    name: str
    status: AgentStatus
    language: str
    voice: str
    prompt: str
    created_at: datetime
    updated_at: datetime


class AgentFilters(Schema):
    status: AgentStatus | None = Field(None, description="Only agents with this status.")
