"""slug → organization → membership → schema, once per request; the connection is back in `public` after it."""

import pytest
from django.db import connection
from django.db.utils import ProgrammingError
from django.test.utils import CaptureQueriesContext

from public_app.models import Membership, OrganizationStatus

AGENTS = "/api/v1/organizations/acme/agents"


def search_path() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_connection_is_public_after_a_request_that_failed_half_way(acme, alice, monkeypatch):
    from tenant_apps.agents import api as agents_api

    def boom(**kwargs):
        # by now the request is inside the tenant schema
        assert connection.schema_name == acme.schema_name
        raise RuntimeError("boom")

    monkeypatch.setattr(agents_api, "agent_list", boom)
    assert alice.api.get(AGENTS).status_code == 500
    assert connection.schema_name == "public"
    assert search_path() == "public"
    with pytest.raises(ProgrammingError), connection.cursor() as cursor, transaction_savepoint():
        cursor.execute("SELECT count(*) FROM agents_agent")


class transaction_savepoint:
    """Keep the test's transaction usable after an expected SQL error."""

    def __enter__(self):
        from django.db import transaction

        self.atomic = transaction.atomic()
        self.atomic.__enter__()

    def __exit__(self, *exc):
        self.atomic.__exit__(*exc)
        return False


@pytest.mark.django_db
def test_the_next_request_on_the_same_connection_starts_in_public(acme, globex, alice, eve):
    alice.api.post(AGENTS, {"name": "acme agent"})
    # same thread, same connection: the outsider's request for acme must not see acme's schema
    assert eve.api.get(AGENTS).status_code == 404
    assert eve.api.get("/api/v1/organizations/globex/agents").json()["items"] == []
    assert search_path() == "public"


@pytest.mark.django_db
def test_warm_get_agents_is_one_statement_that_carries_its_own_tenant_pin(acme, globex, alice, eve):
    """Inside one transaction (the test's) the pin is sent with the first statement after a switch, and not again
    while the transaction has it."""
    alice.api.post(AGENTS, {"name": "Ann"})
    eve.api.get("/api/v1/organizations/globex/agents")  # leave the transaction pinned to another tenant
    alice.api.get(AGENTS)  # warm the caches (token, organization, membership)
    eve.api.get("/api/v1/organizations/globex/agents")
    with CaptureQueriesContext(connection) as switching:
        assert alice.api.get(f"{AGENTS}?limit=50").status_code == 200
    statements = [q["sql"] for q in switching.captured_queries]
    assert len(statements) == 1, statements
    pin = (
        f"SELECT pg_catalog.set_config('search_path', '{acme.schema_name}, public', true), "
        f"pg_catalog.set_config('role', '{acme.db_role}', true), "
        f"pg_catalog.set_config('statement_timeout', '{acme.statement_timeout_ms}', true);\n"  # its query budget
    )
    assert statements[0].startswith(pin)
    assert "agents_agent" in statements[0]
    with CaptureQueriesContext(connection) as same:
        assert alice.api.get(f"{AGENTS}?limit=50").status_code == 200
    assert [q["sql"] for q in same.captured_queries] == [statements[0].removeprefix(pin)]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_every_statement_carries_the_pin(tenant_template, alice, eve):
    from tests.conftest import drop_tenant_schemas, make_org

    acme = make_org(alice.user, "acme")
    try:
        alice.api.post(AGENTS, {"name": "Ann"})
        with CaptureQueriesContext(connection) as captured:
            for _ in range(2):
                assert alice.api.get(AGENTS).json()["items"][0]["name"] == "Ann"
        tenant = [q["sql"] for q in captured.captured_queries if "agents_agent" in q["sql"]]
        assert len(tenant) == 2
        assert all(f"set_config('role', '{acme.db_role}', true), " in sql for sql in tenant)
        # and public statements pin `public` with the login role
        with CaptureQueriesContext(connection) as public:
            assert eve.api.get("/api/v1/me/organizations").status_code == 200
        assert public.captured_queries
        assert all(
            q["sql"].startswith(
                "SELECT pg_catalog.set_config('search_path', 'public', true), "
                "pg_catalog.set_config('role', 'none', true);"
            )
            for q in public.captured_queries
        )
    finally:
        drop_tenant_schemas()


@pytest.mark.django_db
def test_removed_member_is_refused_on_the_very_next_request(acme, carol):
    assert carol.api.get(AGENTS).status_code == 200  # cached as a member now
    Membership.objects.get(organization=acme, user=carol.user).delete()
    r = carol.api.get(AGENTS)
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


@pytest.mark.django_db
def test_role_change_takes_effect_on_the_next_request(acme, carol):
    assert carol.api.get(AGENTS).status_code == 200
    membership = Membership.objects.get(organization=acme, user=carol.user)
    membership.role = "billing"
    membership.save()
    assert carol.api.get(AGENTS).status_code == 403


@pytest.mark.django_db
def test_organization_status_change_takes_effect_on_the_next_request(acme, alice):
    assert alice.api.get(AGENTS).status_code == 200
    acme.status = OrganizationStatus.PROVISIONING
    acme.save()
    assert alice.api.get(AGENTS).status_code == 503


@pytest.mark.django_db
def test_stale_cache_fill_after_invalidation_is_ignored(acme, carol):
    """A reader that loaded the membership before a removal committed cannot put it back in the cache."""
    from django.core.cache import cache

    from public_app.cache import cached
    from public_app.selectors import membership_cache_key

    key = membership_cache_key(acme.id, carol.user.id)
    assert carol.api.get(AGENTS).status_code == 200
    generation_before_removal = cache.get(f"{key}:gen")

    def racing_loader():
        # this reader read the row before the removal committed; the removal lands while it is in flight
        Membership.objects.get(organization=acme, user=carol.user).delete()
        return "member"

    cache.delete(key)
    assert cached(key, racing_loader) == "member"  # the racing reader gets its (stale) answer ...
    assert (
        cache.get(key)[0] == generation_before_removal != cache.get(f"{key}:gen")
    )  # ... stored under a dead generation
    assert carol.api.get(AGENTS).status_code == 404


def test_anything_under_api_answers_in_the_api_error_shape(db):
    from django.test import Client

    for path in ("/api", "/api/", "/api/v9/organizations", "/api/v1x"):
        response = Client().get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path
