"""Structured logs: every line carries the request id, organization slug, caller (user or API key id), and for
jobs the actor name and message id. JSON in production (LOG_FORMAT=json), readable text in development.
Secrets never reach a log line: bearer tokens, API keys, invitation tokens and webhook secrets are redacted by a
filter on every handler, whatever logged them (our code, Django's request logger, gunicorn, httpx)."""

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

FIELDS = ("request_id", "org", "actor", "job", "message_id")
_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 - never mutated in place

# ut_ user tokens, ak_ API keys, it_ invitation tokens, whsec_ webhook secrets, sk_/rk_ Stripe keys, Bearer values.
SECRET_PATTERN = re.compile(
    r"\b(?:ut|ak|it)_[A-Za-z0-9_\-]{8,}|\bwhsec_[A-Za-z0-9+/=_\-]{8,}|\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{4,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-+/=]{8,}"
)


def redact(text: str) -> str:
    return SECRET_PATTERN.sub("[redacted]", text)


def log_context_set(**values: str | None) -> None:
    current = dict(_context.get())
    current.update({k: v for k, v in values.items() if v is not None})
    _context.set(current)


def log_context_clear() -> None:
    _context.set({})


@contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """The values on every line logged inside the block; what was there before comes back after it."""
    token = _context.set({**_context.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in FIELDS:
            setattr(record, name, context.get(name, "-"))
        # Render the message once and redact it; args are dropped so no formatter can re-insert a secret.
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, "-")
            if value != "-":
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s org=%(org)s actor=%(actor)s job=%(job)s] %(message)s"
)


def logging_config(fmt: str, level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "config.logging.ContextFilter"}},
        "formatters": {
            "json": {"()": "config.logging.JsonFormatter"},
            "text": {"format": TEXT_FORMAT},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # httpx logs every request URL at INFO; webhook URLs may carry customer tokens in their query.
            "httpx": {"level": "WARNING"},
            "gunicorn.error": {"handlers": ["console"], "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "propagate": False},
        },
    }
