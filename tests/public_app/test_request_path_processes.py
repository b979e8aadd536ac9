"""Issue 17: each web process keeps its own memo of the callers it served (public_app.services.callers), confirmed
with the shared cache on every request. A change made through one process must take effect on the very next request
served by another process that holds a memo of the caller. Two real server processes on one database and one cache:
the run command (process A) and gunicorn with one worker (process B)."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from tests.dependencies import PrivateRedis
from tests.pooler import start_web, wait_until
from tests.service import Service


@pytest.fixture(scope="module", autouse=True)
def _test_database(django_db_setup: Any) -> None:
    """The suite's own test database exists (its session teardown connects to it), though this test uses its own."""


@pytest.fixture
def two_processes(tmp_path: Path, smtp_server: Any) -> Iterator[tuple[Service, str, PrivateRedis]]:
    name = f"orgs_memo_{os.getpid()}"
    admin = "postgres://postgres@127.0.0.1:5432/postgres"
    broker, cache = PrivateRedis(tmp_path).start(), PrivateRedis(tmp_path).start()
    service = Service(tmp_path, f"postgres://postgres@127.0.0.1:5432/{name}", broker.url, cache.url,
                      smtp_server.port, DB_CONN_MAX_AGE="60", TENANT_ROLE_PREFIX=f"{name}_")  # fmt: skip
    try:
        service.start()
        other = start_web(service.processes, {**service.env, "DB_CONN_MAX_AGE": "60"}, workers=1, threads=2)
        yield service, other, cache
    finally:
        service.stop()
        broker.kill()
        cache.kill()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [f"{name}\\_%"]):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_change_through_one_process_is_seen_by_the_next_request_of_another(two_processes: Any) -> None:
    service, other, cache = two_processes
    owner = service.sign_up("owner@example.com")
    service.create_organization("acme")
    wait_until(lambda: service.statuses_of(["acme"])["active"] == 1, 60, "the organization")
    invitation = service.invite("acme", "member@example.com")
    member = service.sign_up("member@example.com")
    accepted = service.call("POST", f"/api/v1/me/invitations/{invitation}/accept", token=member)
    assert accepted.status_code == 200, accepted.text
    member_uid = service.call("GET", "/api/v1/me", token=member).json()["id"]
    key = service.call("POST", "/api/v1/organizations/acme/api-keys", {"name": "k", "role": "member"}, token=owner)
    key_id, key_secret = key.json()["id"], key.json()["key"]
    agents = "/api/v1/organizations/acme/agents"

    def get(base: str, path: str, token: str) -> int:
        return httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code

    def mgets() -> int:
        stats = redis.Redis.from_url(cache.url).info("commandstats")
        return int(stats.get("cmdstat_mget", {}).get("calls", 0))

    for base in (service.base, other):  # both processes come to hold a memo of both callers
        for token in (member, key_secret):
            assert get(base, agents, token) == 200
            assert get(base, agents, token) == 200
    before = mgets()
    assert get(other, agents, member) == 200
    assert mgets() - before == 1, "process B answered from its memo: one MGET of the generations, nothing else"

    # Role change through A: B's next request of the member is refused for lack of the capability.
    member_path = f"/api/v1/organizations/acme/members/{member_uid}"
    changed = service.call("PATCH", member_path, {"role": "billing"}, token=owner)
    assert changed.status_code == 200
    assert get(other, agents, member) == 403
    assert get(other, "/api/v1/organizations/acme/billing", member) == 200

    # Key revocation through A: B's next request with the key is unauthenticated.
    revoked = service.call("DELETE", f"/api/v1/organizations/acme/api-keys/{key_id}", token=owner)
    assert revoked.status_code == 204
    assert get(other, agents, key_secret) == 401

    # Removal through A: B's next request of the (former) member does not even see the organization.
    removed = service.call("DELETE", f"/api/v1/organizations/acme/members/{member_uid}", token=owner)
    assert removed.status_code == 204
    assert get(other, "/api/v1/organizations/acme", member) == 404
    assert get(other, "/api/v1/organizations/acme/billing", member) == 404

    # Log-out through B: A's next request with that token is unauthenticated.
    assert httpx.post(f"{other}/api/v1/auth/logout", headers={"Authorization": f"Bearer {member}"}).status_code == 204
    assert get(service.base, "/api/v1/me", member) == 401
