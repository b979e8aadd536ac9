"""Cursor pagination for every list (API.md): `{"items": [...], "next_cursor": "opaque" | null}`.

Keyset on the primary key, newest first: rows inserted while a client pages are never returned twice or skipped
among the older rows it has not reached, and no page needs a COUNT(*).
"""

import base64
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet
from ninja import Field, Schema

from public_app import errors

T = TypeVar("T")


class PageQuery(Schema):
    limit: int = Field(50, ge=1, le=200, description="Page size, 1–200.")
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the previous page.")


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(value: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{value}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = raw.split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise errors.ValidationFailed.for_field("cursor", "The cursor is not valid.") from None


def paginate(queryset: QuerySet, page: PageQuery, to_item: Callable[[Any], Any] = lambda row: row) -> dict:
    if page.cursor:
        queryset = queryset.filter(pk__lt=_decode(page.cursor))
    rows = list(queryset.order_by("-pk")[: page.limit + 1])
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    return {
        "items": [to_item(row) for row in rows],
        "next_cursor": _encode(rows[-1].pk) if has_more else None,
    }
