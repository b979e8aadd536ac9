"""Fixtures of the request-path and fair-share tests: two organizations committed for real, and a counter of the
round trips a request makes to the cache and to PostgreSQL."""

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from psycopg.sql import Composable
from redis.connection import AbstractConnection

from public_app.models import Role
from tests.conftest import drop_tenant_schemas, make_org, make_persona


class RoundTrips:
    def __init__(self) -> None:
        self.redis = 0
        self.sql: list[str] = []

    def reset(self) -> None:
        self.redis = 0
        self.sql = []


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counted = RoundTrips()
    send = AbstractConnection.send_packed_command
    command = psycopg.Connection._exec_command
    execute = psycopg.Cursor.execute

    me = threading.get_ident()  # the request's thread (a job worker of an earlier test may be polling its broker)

    def counting_send(self: Any, packed: Any, check_health: bool = True) -> Any:
        counted.redis += threading.get_ident() == me
        return send(self, packed, check_health)

    def counting_command(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            counted.sql.append(query.decode() if isinstance(query, bytes) else str(query))
        return command(self, query, *args, **kwargs)

    def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            counted.sql.append(query.as_string(self) if isinstance(query, Composable) else str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", counting_command)
    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    yield counted


@pytest.fixture
def committed(transactional_db: Any, tenant_template: None) -> Iterator[dict[str, Any]]:
    """Two organizations committed for real (requests then run in autocommit, as in production)."""
    owner, other = make_persona("rt-owner@example.com", "Owner"), make_persona("rt-other@example.com", "Other")
    acme, globex = make_org(owner.user, "acme"), make_org(other.user, "globex")
    member = make_persona("rt-member@example.com", "Member")
    acme.memberships.create(user=member.user, role=Role.MEMBER)
    try:
        yield {"owner": owner, "member": member, "other": other, "acme": acme, "globex": globex}
    finally:
        connection.set_schema_to_public()
        drop_tenant_schemas()
