"""Helpers shared by the tenant-data apps: ids in paths and bodies, and lookups that 404 or 422."""

from datetime import datetime
from typing import Annotated, TypeVar

from django.db.models import Model, QuerySet
from ninja import Field, Schema
from pydantic import BeforeValidator

from public_app import errors
from public_app.fields import Instant

M = TypeVar("M", bound=Model)
MAX_ID_DIGITS = 18


def as_id(value: str | int | None) -> int | None:
    """A row id from text, or None when the text cannot be one (not digits, or too long for a bigint)."""
    text = str(value) if value is not None else ""
    if not text.isdigit() or len(text) > MAX_ID_DIGITS:
        return None
    return int(text)


def get_or_404(queryset: QuerySet[M], object_id: str, label: str) -> M:
    """The row with this id in the current (tenant) schema, or 404: ids of other organizations simply don't exist."""
    pk = as_id(object_id)
    found = queryset.filter(pk=pk).first() if pk is not None else None
    if found is None:
        raise errors.NotFound(f"{label} not found.")
    return found


def save_existing(instance: M, label: str) -> M:
    """Write an edited row back with an UPDATE only; a row another request deleted meanwhile is 404. (Model.save()
    would INSERT it again, bringing back what was just deleted; save(update_fields=...) would raise: a 500.)"""
    values = {f.attname: f.pre_save(instance, False) for f in instance._meta.concrete_fields if not f.primary_key}
    if not type(instance)._base_manager.filter(pk=instance.pk).update(**values):
        raise errors.NotFound(f"{label} not found.")
    return instance


def reference_or_422(queryset: QuerySet[M], object_id: str | None, field: str, label: str) -> M | None:
    """A referenced row (e.g. a lead's campaign) that must exist in this organization, else 422 on `field`."""
    if object_id is None:
        return None
    pk = as_id(object_id)
    found = queryset.filter(pk=pk).first() if pk is not None else None
    if found is None:
        raise errors.ValidationFailed.for_field(field, f"No {label} with this id in this organization.")
    return found


def filter_by_reference(queryset: QuerySet[M], field: str, object_id: str | None) -> QuerySet[M]:
    """`?agent_id=` style filters: rows referencing that id; an id that cannot exist matches nothing."""
    if object_id is None:
        return queryset
    pk = as_id(object_id)
    return queryset.filter(**{field: pk}) if pk is not None else queryset.none()


def str_id(value: int | None) -> str | None:
    return None if value is None else str(value)


# Tenant rows are numbered per schema; the API shows their ids as strings (an Out schema reads the model's int).
RowId = Annotated[str, BeforeValidator(str)]
RowRef = Annotated[str | None, BeforeValidator(str_id)]


class CreatedAfterFilter(Schema):
    created_after: Instant | None = Field(None, description="Only rows created after this instant.")


def filter_created_after(queryset: QuerySet[M], created_after: datetime | None) -> QuerySet[M]:
    return queryset.filter(created_at__gt=created_after) if created_after else queryset
