"""Phone numbers CRUD under /api/v1/organizations/{slug}/phone-numbers (tenant data: owner, admin, member)."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from public_app import errors
from public_app.access import Capability
from public_app.api.security import OrgAuth
from public_app.fields import ShortText
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.agents.models import Agent
from tenant_apps.common import (
    CreatedAfterFilter,
    filter_by_reference,
    filter_created_after,
    get_or_404,
    reference_or_422,
    save_existing,
    str_id,
)
from tenant_apps.leads.schemas import Phone
from tenant_apps.phone_numbers.models import PhoneNumber

router = Router(tags=["phone numbers"])
tenant_data = OrgAuth(Capability.TENANT_DATA, tenant_schema=True)


class PhoneNumberIn(Schema):
    e164: Phone
    label: ShortText = ""
    agent_id: str | None = Field(None, max_length=20)


class PhoneNumberUpdateIn(Schema):
    e164: Phone | None = None
    label: ShortText | None = None
    agent_id: str | None = Field(None, max_length=20)


class PhoneNumberOut(Schema):
    id: str
    e164: str
    label: str
    agent_id: str | None
    created_at: datetime


class PhoneNumberFilters(CreatedAfterFilter):
    agent_id: str | None = Field(None, max_length=20)


def phone_out(number: PhoneNumber) -> dict:
    return {
        "id": str(number.id),
        "e164": number.e164,
        "label": number.label,
        "agent_id": str_id(number.agent_id),
        "created_at": number.created_at,
    }


def _save(number: PhoneNumber) -> PhoneNumber:
    try:
        with transaction.atomic():
            if number.pk is None:
                number.save()
            else:
                save_existing(number, "Phone number")
    except IntegrityError:
        raise errors.Conflict("This number is already in this organization.", code="phone_number_taken") from None
    return number


@router.get("/{slug}/phone-numbers", response=Page[PhoneNumberOut], auth=tenant_data)
def list_phone_numbers(
    request: HttpRequest, slug: str, page: Query[PageQuery], filters: Query[PhoneNumberFilters]
) -> dict:
    """List phone numbers, newest first; filter by `agent_id`, `created_after`."""
    queryset = filter_created_after(PhoneNumber.objects.all(), filters.created_after)
    return paginate(filter_by_reference(queryset, "agent_id", filters.agent_id), page, phone_out)


@router.post("/{slug}/phone-numbers", response={201: PhoneNumberOut}, auth=tenant_data)
def create_phone_number(request: HttpRequest, slug: str, payload: PhoneNumberIn) -> Status:
    """Add a number (E.164); `agent_id` must be an agent of this organization."""
    agent = reference_or_422(Agent.objects.all(), payload.agent_id, "agent_id", "agent")
    return Status(201, phone_out(_save(PhoneNumber(e164=payload.e164, label=payload.label, agent=agent))))


@router.get("/{slug}/phone-numbers/{number_id}", response=PhoneNumberOut, auth=tenant_data)
def get_phone_number(request: HttpRequest, slug: str, number_id: str) -> dict:
    """One phone number."""
    return phone_out(get_or_404(PhoneNumber.objects.all(), number_id, "Phone number"))


@router.patch("/{slug}/phone-numbers/{number_id}", response=PhoneNumberOut, auth=tenant_data)
def update_phone_number(request: HttpRequest, slug: str, number_id: str, payload: PhoneNumberUpdateIn) -> dict:
    """Change the number, label or agent (`agent_id: null` unassigns)."""
    number = get_or_404(PhoneNumber.objects.all(), number_id, "Phone number")
    changes = payload.dict(exclude_unset=True)
    if changes.get("e164") is not None:
        number.e164 = changes["e164"]
    if changes.get("label") is not None:
        number.label = changes["label"]
    if "agent_id" in changes:
        number.agent = reference_or_422(Agent.objects.all(), changes["agent_id"], "agent_id", "agent")
    return phone_out(_save(number))


@router.delete("/{slug}/phone-numbers/{number_id}", response={204: None}, auth=tenant_data)
def delete_phone_number(request: HttpRequest, slug: str, number_id: str) -> Status:
    """Release a phone number."""
    get_or_404(PhoneNumber.objects.all(), number_id, "Phone number").delete()
    return Status(204, None)
