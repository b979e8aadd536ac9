"""Helpers shared by the tenant-data apps: ids in paths and bodies, and lookups that 404 or 422.

Tenant rows are numbered per schema (keyset pagination and foreign keys stay on that primary key); the API shows and
takes their `uid` instead: `agt_…`, `cmp_…`, `led_…`, `pn_…` (public_app.ids), unique across organizations, so an id
only ever names one row and its prefix says of which kind.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeVar

from django.db.models import Model, QuerySet
from ninja import Field, Schema
from pydantic import StringConstraints

from public_app import errors, ids
from public_app.fields import Instant

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Kind:
    """One kind of tenant object: the prefix of its ids and the name messages give it."""

    prefix: str
    label: str

    def matches(self, value: object) -> bool:
        return ids.is_uid(value, self.prefix)


AGENT = Kind(ids.AGENT, "agent")
CAMPAIGN = Kind(ids.CAMPAIGN, "campaign")
LEAD = Kind(ids.LEAD, "lead")
PHONE_NUMBER = Kind(ids.PHONE_NUMBER, "phone number")

# Ids as the API shows and takes them; the pattern is in the OpenAPI schema, and a value of another kind (a `cmp_…`
# given as `agent_id`) is a 422 naming the field.
AgentId = Annotated[str, StringConstraints(pattern=ids.uid_pattern(ids.AGENT))]
CampaignId = Annotated[str, StringConstraints(pattern=ids.uid_pattern(ids.CAMPAIGN))]
LeadId = Annotated[str, StringConstraints(pattern=ids.uid_pattern(ids.LEAD))]
PhoneNumberId = Annotated[str, StringConstraints(pattern=ids.uid_pattern(ids.PHONE_NUMBER))]
AuditEntryId = Annotated[str, StringConstraints(pattern=ids.uid_pattern(ids.AUDIT_ENTRY))]


def get_or_404(queryset: QuerySet[M], object_id: str, kind: Kind) -> M:
    """The row with this id in the current (tenant) schema, or 404: an id of another kind, or of another
    organization's row, simply does not exist here."""
    found = queryset.filter(uid=object_id).first() if kind.matches(object_id) else None
    if found is None:
        raise errors.NotFound(f"{kind.label.capitalize()} not found.")
    return found


def save_existing(instance: M, label: str) -> M:
    """Write an edited row back with an UPDATE only; a row another request deleted meanwhile is 404. (Model.save()
    would INSERT it again, bringing back what was just deleted; save(update_fields=...) would raise: a 500.)"""
    values = {f.attname: f.pre_save(instance, False) for f in instance._meta.concrete_fields if not f.primary_key}
    if not type(instance)._base_manager.filter(pk=instance.pk).update(**values):
        raise errors.NotFound(f"{label} not found.")
    return instance


def reference_or_422(queryset: QuerySet[M], object_id: str | None, field: str, kind: Kind) -> M | None:
    """A referenced row (e.g. a lead's campaign) that must exist in this organization, else 422 on `field`. The API
    schemas refuse an id of the wrong kind already; this holds for every other caller of the services too."""
    if object_id is None:
        return None
    if not kind.matches(object_id):
        raise errors.ValidationFailed.for_field(field, f"Not {_article(kind.label)} id (`{kind.prefix}_…`).")
    found = queryset.filter(uid=object_id).first()
    if found is None:
        raise errors.ValidationFailed.for_field(field, f"No {kind.label} with this id in this organization.")
    return found


def filter_by_reference(queryset: QuerySet[M], relation: str, object_id: str | None, kind: Kind) -> QuerySet[M]:
    """`?agent_id=` style filters: rows referencing the row with that id; an unknown id matches nothing, an id of
    another kind is a 422 on `<relation>_id` (as the API schema has it)."""
    if object_id is None:
        return queryset
    if not kind.matches(object_id):
        field = f"{relation}_id"
        raise errors.ValidationFailed.for_field(field, f"Not {_article(kind.label)} id (`{kind.prefix}_…`).")
    return queryset.filter(**{f"{relation}__uid": object_id})


def _article(label: str) -> str:
    return f"an {label}" if label[0] in "aeiou" else f"a {label}"


class CreatedAfterFilter(Schema):
    created_after: Instant | None = Field(None, description="Only rows created after this instant.")


def filter_created_after(queryset: QuerySet[M], created_after: datetime | None) -> QuerySet[M]:
    return queryset.filter(created_at__gt=created_after) if created_after else queryset
