from datetime import datetime

from ninja import Field, Schema

from public_app.fields import BodyIn, ShortText
from tenant_apps.common import AgentId, CreatedAfterFilter, PhoneNumberId
from tenant_apps.leads.schemas import Phone
from tenant_apps.phone_numbers.models import PhoneNumber


class PhoneNumberIn(BodyIn):
    e164: Phone
    label: ShortText = ""
    agent_id: AgentId | None = None


class PhoneNumberUpdateIn(BodyIn):
    e164: Phone | None = None
    label: ShortText | None = None
    agent_id: AgentId | None = None


class PhoneNumberOut(Schema):
    id: PhoneNumberId = Field(alias="uid")
    e164: str
    label: str
    agent_id: AgentId | None
    created_at: datetime

    @staticmethod
    def resolve_agent_id(number: PhoneNumber) -> str | None:
        return number.agent.uid if number.agent else None


class PhoneNumberFilters(CreatedAfterFilter):
    agent_id: AgentId | None = Field(None, description="Only numbers assigned to this agent.")
