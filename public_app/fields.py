"""Reusable pydantic field types for request schemas: API.md text limits and NUL rejection in one place."""

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints, model_validator


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, StringConstraints(max_length=20000), AfterValidator(_no_nul)]
Secret = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_nul)]


# Bidirectional embeddings, overrides and isolates: in a name they reorder what the reader sees ("X invited you to
# join Y" in an email subject can be made to read as something else). Other format characters (ZWJ in emoji, ZWNJ
# in Persian) are legitimate in names and stay.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _no_control(value: str) -> str:
    # Names end up in email headers (an inviter's or organization's name in the subject): any line break there
    # (CR/LF, but also NEL and the Unicode line/paragraph separators) breaks every email they send.
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS for ch in value):
        raise ValueError("Control characters are not allowed")
    return value


def _strip_non_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("This field may not be blank")
    return _no_control(value)


# A required human-readable name: trimmed, not blank, at most 200 characters, no NUL or control characters.
Name = Annotated[ShortText, AfterValidator(_strip_non_blank)]
# The same, optional (may be empty).
OptionalName = Annotated[ShortText, AfterValidator(_no_control)]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("The date is out of range") from None


def _iso_8601(value: object) -> object:
    """Only an ISO 8601 text (or a datetime): pydantic would read `0.5` or `1700000000` as a Unix timestamp."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", value):
        raise ValueError("Expected an ISO 8601 date-time with a time zone, such as 2026-01-31T12:00:00Z")
    return value


# A point in time with an explicit offset, as ISO 8601 text, stored and compared in UTC (PostgreSQL refuses offsets
# beyond ±15:59, and naive datetimes are ambiguous).
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_to_utc)]


class BodyIn(Schema):
    """The base of every JSON request body: an object, nothing else. ninja's schemas read their input by attribute,
    so `[null, null]`, `42` or `null` would otherwise validate as "no fields given" (a PATCH answering 200 having
    changed nothing)."""

    @model_validator(mode="wrap")
    @classmethod
    def _an_object(cls, value: Any, handler: Any) -> Any:
        raw = getattr(value, "_obj", value)  # ninja may hand over its attribute reader around the input
        if not isinstance(raw, dict) and not isinstance(raw, Schema):
            raise ValueError("The request body must be a JSON object.")
        return handler(value)
