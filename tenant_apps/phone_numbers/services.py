"""Phone numbers: add, change, release. A number is unique in its organization (409 `phone_number_taken`)."""

from typing import Any

from django.db import IntegrityError, transaction

from public_app import errors
from public_app.access import Access
from public_app.events import Target, happened
from tenant_apps.agents.models import Agent
from tenant_apps.common import AGENT, reference_or_422, save_existing
from tenant_apps.phone_numbers.models import PhoneNumber


def _agent(agent_id: str | None) -> Agent | None:
    return reference_or_422(Agent.objects.all(), agent_id, "agent_id", AGENT)


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


def phone_number_create(*, e164: str, label: str, agent_id: str | None) -> PhoneNumber:
    return _save(PhoneNumber(e164=e164, label=label, agent=_agent(agent_id)))


def phone_number_update(*, number: PhoneNumber, changes: dict[str, Any]) -> PhoneNumber:
    """PATCH semantics: absent fields stay; `agent_id: null` unassigns."""
    if changes.get("e164") is not None:
        number.e164 = changes["e164"]
    if changes.get("label") is not None:
        number.label = changes["label"]
    if "agent_id" in changes:
        number.agent = _agent(changes["agent_id"])
    return _save(number)


@transaction.atomic
def phone_number_delete(*, access: Access, number: PhoneNumber) -> None:
    happened(access=access, action="phone_number.deleted", target=Target("phone_number", number.uid, number.e164))
    number.delete()
