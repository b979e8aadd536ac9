"""Reusable pydantic field types for request schemas: API.md text limits and NUL rejection in one place."""

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Schema
from ninja.schema import DjangoGetter
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic_core import CoreSchema


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes the metadata of `X | None`
class Documented:
    """States in the JSON Schema a rule a validator below enforces (a pattern, a format), so clients and schema-driven
    testers know it; also works inside `X | None` and `list[X]`, where pydantic ignores `Field(...)`."""

    extra: dict[str, Any]

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = dict(handler(core_schema))
        schema.update(self.extra)
        return schema


# Characters `_no_control` refuses (C0/C1 controls, line and paragraph separators, bidi controls), as a regex class.
_CONTROLS = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069"
NO_NUL_PATTERN = "^[^\\u0000]*$"
NAME_PATTERN = f"^[^{_CONTROLS}]*[^\\s{_CONTROLS}][^{_CONTROLS}]*$"
OPTIONAL_NAME_PATTERN = f"^[^{_CONTROLS}]*$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


_NO_NUL = Documented({"pattern": NO_NUL_PATTERN})
ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_nul), _NO_NUL]
LongText = Annotated[str, StringConstraints(max_length=20000), AfterValidator(_no_nul), _NO_NUL]
Secret = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_nul), _NO_NUL]


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
    # Control characters first: strip() would quietly drop a trailing line break or tab that the schema refuses.
    value = _no_control(value).strip()
    if not value:
        raise ValueError("This field may not be blank")
    return value


# A required human-readable name: trimmed, not blank, at most 200 characters, no NUL or control characters.
Name = Annotated[ShortText, AfterValidator(_strip_non_blank), Documented({"minLength": 1, "pattern": NAME_PATTERN})]
# The same, optional (may be empty).
OptionalName = Annotated[ShortText, AfterValidator(_no_control), Documented({"pattern": OPTIONAL_NAME_PATTERN})]
# An email address the service checks (Django's validator); stated as `format: email`.
EmailAddress = Annotated[ShortText, Documented({"format": "email"})]
EmailOrEmpty = Annotated[ShortText, Documented({"anyOf": [{"format": "email"}, {"maxLength": 0}]})]
# An http(s) address the service checks (Django's URLValidator), or empty to clear it.
WebAddressOrEmpty = Annotated[
    ShortText, Documented({"anyOf": [{"format": "uri", "pattern": "^https?://"}, {"maxLength": 0}]})
]


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


class RowOut(Schema):
    """An output schema read straight off a model row: pydantic reads its attributes itself (in Rust), instead of
    through ninja's per-attribute getter, which costs a Python call per field and row (a fifth of a 200-row list
    page). Only for schemas without `resolve_*` methods (`_ninja_resolvers`) whose fields are plain attributes of
    the row; anything else (a dict, a schema with resolvers) goes ninja's way."""

    @model_validator(mode="wrap")
    @classmethod
    def _run_root_validator(cls, values: Any, handler: Any, info: Any) -> Any:
        if cls._ninja_resolvers or isinstance(values, dict):
            return handler(DjangoGetter(values, cls, info.context))  # what ninja's own validator does
        return handler(values)


# An integration's API key travels in an HTTP header: printable ASCII without spaces (anything else could never be a
# valid key, and would fail in the HTTP client as if Leadsforce were down).
LeadsforceKey = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[\x21-\x7e]+$")]
