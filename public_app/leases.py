"""Leases: named locks in a table (public_app.Lease), one statement each, so they hold behind a transaction pooler
(a session advisory lock would be taken on one server connection and released, or not, on another)."""

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from public_app.tenancy import public_context


def new_holder() -> str:
    """Who holds a lease: host, process and a random part (two holders in one process stay apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_acquire(name: str, holder: str, ttl: timedelta) -> bool:
    """Take the lease, or renew it if `holder` already has it; False while someone else holds an unexpired one."""
    now = timezone.now()
    with public_context(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO public_app_lease (name, holder, expires_at) VALUES (%s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
            WHERE public_app_lease.holder = EXCLUDED.holder OR public_app_lease.expires_at < %s
            RETURNING holder
            """,
            [name, holder, now + ttl, now],
        )
        return cursor.fetchone() is not None


def lease_release(name: str, holder: str) -> None:
    with public_context(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM public_app_lease WHERE name = %s AND holder = %s", [name, holder])


@contextmanager
def lease(name: str, ttl: timedelta) -> Iterator[bool]:
    """Hold `name` for the block if nobody else does (yields whether we got it); released on exit. A holder that
    dies keeps it until `ttl` passes, so `ttl` must be longer than the block takes (or renew with lease_acquire)."""
    holder = new_holder()
    acquired = lease_acquire(name, holder, ttl)
    try:
        yield acquired
    finally:
        if acquired:
            lease_release(name, holder)
