from datetime import datetime

from ninja import Field, Schema

from public_app.fields import BodyIn, ShortText
from tenant_apps.common import CreatedAfterFilter, RowId, RowRef
from tenant_apps.leads.schemas import Phone


class PhoneNumberIn(BodyIn):
    e164: Phone
    label: ShortText = ""
    agent_id: str | None = Field(None, max_length=20)


class PhoneNumberUpdateIn(BodyIn):
    e164: Phone | None = None
    label: ShortText | None = None
    agent_id: str | None = Field(None, max_length=20)


class PhoneNumberOut(Schema):
    id: RowId
    e164: str
    label: str
    agent_id: RowRef
    created_at: datetime


class PhoneNumberFilters(CreatedAfterFilter):
    agent_id: str | None = Field(None, max_length=20)
