"""Cursor pagination for every list (API.md): `{"items": [...], "next_cursor": "opaque" | null}`.

Keyset on the primary key, newest first: rows inserted while a client pages are never returned twice or skipped
among the older rows it has not reached, and no page needs a COUNT(*).
"""

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db.models import Q, QuerySet
from ninja import Field, Schema

from public_app import errors

T = TypeVar("T")


class PageQuery(Schema):
    limit: int = Field(50, ge=1, le=200, description="Page size, 1–200.")
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the previous page.")


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(*values: object) -> str:
    return base64.urlsafe_b64encode(("v1:" + "|".join(str(v) for v in values)).encode()).decode().rstrip("=")


def _decode(cursor: str, parts: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = raw.split(":", 1)
        values = value.split("|")
        if version != "v1" or len(values) != parts:
            raise ValueError(version)
        return values
    except (ValueError, UnicodeDecodeError):
        raise errors.ValidationFailed.for_field("cursor", "The cursor is not valid.") from None


def paginate(
    queryset: QuerySet,
    page: PageQuery,
    to_item: Callable[[Any], Any] = lambda row: row,
    *,
    order_by: str | None = None,
) -> dict:
    """Keyset pages, newest first by primary key; or by the non-null datetime field `order_by` (descending, ties
    broken by primary key)."""
    if page.cursor:
        if order_by is None:
            (pk,) = _decode(page.cursor, 1)
            queryset = queryset.filter(pk__lt=_parse_int(pk))
        else:
            at, pk = _decode(page.cursor, 2)
            moment = _parse_datetime(at)
            queryset = queryset.filter(
                Q(**{f"{order_by}__lt": moment}) | Q(**{order_by: moment, "pk__lt": _parse_int(pk)})
            )
    ordering = ["-pk"] if order_by is None else [f"-{order_by}", "-pk"]
    rows = list(queryset.order_by(*ordering)[: page.limit + 1])
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = None
    if has_more:
        last = rows[-1]
        next_cursor = _encode(last.pk) if order_by is None else _encode(getattr(last, order_by).isoformat(), last.pk)
    return {"items": [to_item(row) for row in rows], "next_cursor": next_cursor}


def _parse_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise errors.ValidationFailed.for_field("cursor", "The cursor is not valid.") from None


def _parse_datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise errors.ValidationFailed.for_field("cursor", "The cursor is not valid.") from None


def paginate_sequence(items: list[Any], page: PageQuery, position: Callable[[Any], tuple[int, str]]) -> dict:
    """Pages of a short list held in memory (an organization's roles), in the order of `position` (unique per
    item); the cursor is the last item's position, so an item added or removed between pages moves nothing else."""
    ordered = sorted(items, key=position)
    if page.cursor:
        group, value = _decode(page.cursor, 2)
        after = (_parse_int(group), value)
        ordered = [item for item in ordered if position(item) > after]
    rows = ordered[: page.limit]
    next_cursor = _encode(*position(rows[-1])) if len(ordered) > page.limit else None
    return {"items": rows, "next_cursor": next_cursor}
