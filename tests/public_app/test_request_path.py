"""The request path at the floor (issue 17): what one request costs in round trips to the cache and to PostgreSQL.

Counted where they leave the process: a Redis round trip is one write of packed commands to the socket (a pipeline
is one), a PostgreSQL round trip is one query message a cursor sends (as sent: with whatever the tenant context put
in front of the statement) or one command the driver sends on its own (BEGIN, COMMIT, ROLLBACK). The requests run
as in production: in autocommit, warm caches.
"""

import select
from typing import Any

import psycopg
from django.db import connection

from public_app.cache import memo_clear
from tests.conftest import Api, Persona
from tests.public_app.conftest import RoundTrips


def cost(counted: RoundTrips, call: Any) -> tuple[int, int, Any]:
    call()  # the first request of a caller reads the shared cache and stamps last use; the next ones are measured
    counted.reset()
    response = call()
    return counted.redis, len(counted.sql), response


def test_authenticated_reads_cost_one_cache_round_trip_and_their_own_query(committed, round_trips):
    owner: Persona = committed["owner"]
    agent = owner.api.post("/api/v1/organizations/acme/agents", {"name": "Ann"}).json()
    key = owner.api.post("/api/v1/organizations/acme/api-keys", {"name": "k", "role": "member"}).json()["key"]
    expected = {
        # path: (cache round trips, SQL round trips)
        "/api/v1/me": (1, 0),  # the account comes with the token: no query
        "/api/v1/organizations/acme": (1, 0),  # the organization comes with the caller: no query
        "/api/v1/organizations/acme/agents?limit=20": (1, 1),
        f"/api/v1/organizations/acme/agents/{agent['id']}": (1, 1),
        "/api/v1/organizations/acme/members": (1, 1),
        "/api/v1/me/organizations": (1, 1),
    }
    for path, (redis, sql) in expected.items():
        got_redis, got_sql, response = cost(round_trips, lambda path=path: owner.api.get(path))
        assert response.status_code == 200, (path, response.content)
        assert (got_redis, got_sql) == (redis, sql), (path, round_trips.sql)
    got_redis, got_sql, response = cost(round_trips, lambda: Api(key).get("/api/v1/organizations/acme/agents"))
    assert response.status_code == 200
    assert (got_redis, got_sql) == (1, 1), round_trips.sql
    # The tenant query carries the transaction's pin in the same message: one round trip, one implicit transaction.
    assert round_trips.sql[0].startswith("SELECT pg_catalog.set_config('search_path'")


def test_a_single_statement_write_is_one_round_trip(committed, round_trips):
    owner: Persona = committed["owner"]
    _, _, response = cost(round_trips, lambda: owner.api.post("/api/v1/organizations/acme/agents", {"name": "Bo"}))
    assert response.status_code == 201
    assert round_trips.redis == 1
    [insert] = round_trips.sql  # the pin and the INSERT in one message, its own implicit transaction
    assert insert.startswith("SELECT pg_catalog.set_config('search_path'") and "INSERT INTO" in insert


def test_a_transaction_sends_begin_with_its_first_statement(committed, round_trips):
    owner: Persona = committed["owner"]
    member: Persona = committed["member"]
    path = f"/api/v1/organizations/acme/members/{member.user.uid}"
    roles = iter(["admin", "member"])
    _, _, response = cost(round_trips, lambda: owner.api.patch(path, {"role": next(roles)}))
    assert response.status_code == 200, response.content
    opening = [message for message in round_trips.sql if "BEGIN" in message]
    # One transaction; BEGIN, the pin and its first statement in one message (no round trip for BEGIN alone).
    assert len(opening) == 1, round_trips.sql
    assert opening[0].startswith("BEGIN;\nSELECT pg_catalog.set_config('search_path'"), opening
    assert opening[0].count(";\n") == 2 and "public_app_" in opening[0].split(";\n")[2]
    assert round_trips.sql[-1] == "COMMIT"


def test_refusals_cost_no_query(committed, round_trips):
    other: Persona = committed["other"]
    member: Persona = committed["member"]
    for persona, method, path, status in (
        (other, "GET", "/api/v1/organizations/acme/agents", 404),  # an outsider
        (member, "GET", "/api/v1/organizations/acme/audit-log", 403),  # a member without the capability
    ):
        got_redis, got_sql, response = cost(round_trips, lambda p=persona, m=method, u=path: p.api.request(m, u))
        assert response.status_code == status
        assert (got_redis, got_sql) == (1, 0), round_trips.sql


def test_a_process_without_a_memo_reads_the_shared_cache_in_two_round_trips(committed, round_trips):
    owner: Persona = committed["owner"]
    owner.api.get("/api/v1/organizations/acme/agents")  # the shared cache has token, account, organization, role
    memo_clear()  # as a process that never served this caller
    round_trips.reset()
    assert owner.api.get("/api/v1/organizations/acme/agents").status_code == 200
    # token and organization; account and membership; the last-use stamp's once-a-minute throttle
    assert round_trips.redis == 3
    assert len(round_trips.sql) == 1


def test_every_change_is_seen_by_the_next_request_of_a_process_holding_a_memo(committed):
    owner: Persona = committed["owner"]
    member: Persona = committed["member"]
    acme = committed["acme"]
    key = owner.api.post("/api/v1/organizations/acme/api-keys", {"name": "k", "role": "member"}).json()
    agents = "/api/v1/organizations/acme/agents"
    assert member.api.get(agents).status_code == 200 and member.api.get(agents).status_code == 200
    assert Api(key["key"]).get(agents).status_code == 200 and Api(key["key"]).get(agents).status_code == 200
    assert member.api.get("/api/v1/me").json()["name"] == "Member"

    member.user.name = "Renamed"
    member.user.save()
    assert member.api.get("/api/v1/me").json()["name"] == "Renamed"

    owner.api.patch(f"/api/v1/organizations/acme/members/{member.user.uid}", {"role": "billing"})
    assert member.api.get(agents).status_code == 403
    assert owner.api.delete(f"/api/v1/organizations/acme/api-keys/{key['id']}").status_code == 204
    assert Api(key["key"]).get(agents).status_code == 401
    owner.api.delete(f"/api/v1/organizations/acme/members/{member.user.uid}")
    assert member.api.get("/api/v1/organizations/acme").status_code == 404
    acme.refresh_from_db()
    assert owner.api.patch("/api/v1/organizations/acme", {"name": "Acme Two"}).status_code == 200
    assert owner.api.get("/api/v1/organizations/acme").json()["name"] == "Acme Two"
    member.user.is_active = False
    member.user.save()
    assert member.api.get("/api/v1/me").status_code == 401


def test_a_reused_connection_is_checked_without_a_round_trip(committed, round_trips):
    """Django checks a reused connection with `SELECT 1` at the start of every request (CONN_HEALTH_CHECKS); here
    an idle healthy connection is known by its socket having nothing to read."""
    owner: Persona = committed["owner"]
    agents = "/api/v1/organizations/acme/agents"
    owner.api.get(agents)
    connection.close_at = None  # reused for good, as with DB_CONN_MAX_AGE in production (the tests use 0)
    connection.close_if_unusable_or_obsolete()  # what the start of every request does (the test client does not)
    round_trips.reset()
    assert owner.api.get(agents).status_code == 200
    assert len(round_trips.sql) == 1, round_trips.sql


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_request_uses_it(committed, round_trips):
    owner: Persona = committed["owner"]
    agents = "/api/v1/organizations/acme/agents"
    owner.api.get(agents)
    connection.close_at = None
    pid = connection.connection.info.backend_pid
    with psycopg.connect(dbname=connection.settings_dict["NAME"], host="127.0.0.1", port=5432, user="postgres",
                         autocommit=True) as admin:  # fmt: skip
        # Directly, not through a pooler: the server connection behind ours is the one to end.
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    for _ in range(100):  # the server's goodbye reaches our socket
        if select.select([connection.connection.fileno()], [], [], 0.05)[0]:
            break
    connection.close_if_unusable_or_obsolete()
    round_trips.reset()
    response = owner.api.get(agents)
    assert response.status_code == 200, response.content
    assert connection.connection.info.backend_pid != pid


def test_every_read_costs_one_cache_round_trip_and_no_query_a_cache_or_join_would_remove(
    committed, round_trips, settings
):
    """Each GET of the API, warm, with one object of every kind present (references set, so a list that forgot to
    join its references would cost a query per row): the cache round trips and the SQL messages it sends."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    owner: Persona = committed["owner"]
    org = "/api/v1/organizations/acme"
    api = owner.api
    agent = api.post(f"{org}/agents", {"name": "Ann"}).json()
    campaign = api.post(f"{org}/campaigns", {"name": "Spring", "agent_id": agent["id"]}).json()
    for i in range(3):
        lead = api.post(f"{org}/leads", {"email": f"l{i}@example.com", "campaign_id": campaign["id"]}).json()
    number = api.post(f"{org}/phone-numbers", {"e164": "+14155550100", "agent_id": agent["id"]}).json()
    webhook = api.post(f"{org}/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["lead.created"]}).json()
    api.post(f"{org}/invitations", {"email": "new@example.com", "role": "member"})
    api.post(f"{org}/api-keys", {"name": "k", "role": "member"})
    # path: SQL messages of a warm request (each is one round trip; the tenant's pin rides in the same message)
    expected = {
        "/api/v1/me": 0,
        "/api/v1/me/organizations": 1,
        "/api/v1/me/invitations": 1,
        org: 0,
        f"{org}/members": 1,
        f"{org}/invitations": 1,
        f"{org}/api-keys": 1,
        f"{org}/billing": 2,  # the billing account; the member count (seats used)
        f"{org}/audit-log": 1,
        f"{org}/agents": 1,
        f"{org}/agents/{agent['id']}": 1,
        f"{org}/campaigns": 1,
        f"{org}/campaigns/{campaign['id']}": 1,
        f"{org}/leads": 1,
        f"{org}/leads/{lead['id']}": 1,
        f"{org}/phone-numbers": 1,
        f"{org}/phone-numbers/{number['id']}": 1,
        f"{org}/webhooks": 1,
        f"{org}/webhooks/{webhook['id']}": 1,
        f"{org}/webhooks/{webhook['id']}/deliveries": 2,  # the endpoint (404 when it is not this org's), its page
        f"{org}/integrations/leadsforce": 1,
    }
    measured = {}
    for path in expected:
        got_redis, got_sql, response = cost(round_trips, lambda path=path: api.get(path))
        assert response.status_code == 200, (path, response.content)
        measured[path] = (got_redis, got_sql)
    assert measured == {path: (1, sql) for path, sql in expected.items()}, round_trips.sql
