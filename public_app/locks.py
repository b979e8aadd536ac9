"""PostgreSQL advisory locks keyed by name (a stable 64-bit hash of it)."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


def advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(name: str) -> None:
    """Wait for the lock; it is held until the current transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(name)])


@contextmanager
def advisory_try_lock(name: str) -> Iterator[bool]:
    """Session-level lock without waiting: yields whether we got it, releases it on exit."""
    key = advisory_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
