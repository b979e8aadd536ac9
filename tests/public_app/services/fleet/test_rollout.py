"""Fleet migrations rendered once per migration state (public_app.services.fleet.rollout) give what Django's
executor gives, schema for schema, and fall back to the executor where SQL cannot say it."""

import json
import threading

import pytest
from django.db import connection

from public_app.models import Organization
from public_app.pgtools import direct_connection
from public_app.services.fleet import rollout
from public_app.services.fleet.migrations import migrate_fleet
from public_app.services.fleet.rollout import Rendered, applied_in, apply_to
from public_app.services.provisioning import migrate_one, tenant_migrations
from public_app.tenancy import tenant_role_name
from tests.public_app.services.fleet.test_ops import execute, fleet, orgs  # noqa: F401 - the fixture

# Every table, column, index, constraint and privilege of a schema, with the schema's own name taken out.
CATALOG = """
SELECT 'column', c.table_name, c.column_name || ' ' || c.data_type || ' ' || c.is_nullable || ' '
       || coalesce(c.column_default, '') || ' ' || c.is_identity
FROM information_schema.columns c WHERE c.table_schema = %(schema)s
UNION ALL
SELECT 'index', i.tablename, replace(i.indexdef, %(quoted)s, '') FROM pg_indexes i WHERE i.schemaname = %(schema)s
UNION ALL
SELECT 'constraint', t.relname, k.conname || ' ' || replace(pg_get_constraintdef(k.oid), %(quoted)s, '')
FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'grant', t.relname, string_agg(p.privilege_type, ',' ORDER BY p.privilege_type)
FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace,
     LATERAL (SELECT unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS privilege_type) p
WHERE n.nspname = %(schema)s AND t.relkind IN ('r', 'S') AND has_table_privilege(%(role)s, t.oid, p.privilege_type)
GROUP BY t.relname
"""


def catalog(schema: str) -> set[tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(CATALOG, {"schema": schema, "quoted": f"{schema}.", "role": tenant_role_name(schema)})
        return {tuple(row) for row in cursor.fetchall()}


def back_before_webhooks_and_integrations(organization: Organization) -> None:
    """The schema as it was before the webhooks and integrations apps existed (their migrations are pure schema
    operations: tables, foreign keys, indexes)."""
    schema = f'"{organization.schema_name}"'
    for table in ("webhooks_webhookattempt", "webhooks_webhookdelivery", "webhooks_webhookendpoint",
                  "integrations_integration"):  # fmt: skip
        execute(f"DROP TABLE {schema}.{table} CASCADE")
    execute(f"DELETE FROM {schema}.django_migrations WHERE app IN ('webhooks', 'integrations')")
    Organization.objects.filter(id=organization.id).update(migration_state="before-webhooks")


def test_rendered_migrations_give_each_schema_what_djangos_executor_gives(fleet):  # noqa: F811
    a, b, c = fleet["orgs"]
    head = catalog(a.schema_name)
    for organization in (a, b, c):
        back_before_webhooks_and_integrations(organization)
    assert catalog(a.schema_name) != head
    # c the ordinary way, by Django's executor (which records it as current): the reference
    assert migrate_one(c.schema_name)[1] is None
    result = migrate_fleet(jobs=2)
    assert (result["failed"], result["rendered"], result["executor"], result["skipped"]) == ({}, 2, 0, 1), result
    assert catalog(a.schema_name) == catalog(b.schema_name) == catalog(c.schema_name) == head
    assert applied_in(a.schema_name) == applied_in(c.schema_name) == set(tenant_migrations())
    assert Organization.objects.filter(migration_state=result["state"]).count() == 3
    assert "no drift" in orgs("check")
    # the tenant's role reaches the re-created tables: the API works on them
    owner = fleet["owner"]
    created = owner.api.post("/api/v1/organizations/ops-0/webhooks",
                             {"url": "https://hooks.example.com/x", "events": ["member.added"]})  # fmt: skip
    assert created.status_code == 201, created.content


def test_a_schema_whose_records_differ_from_its_group_goes_to_djangos_executor(fleet):  # noqa: F811
    a, b, _ = fleet["orgs"]
    back_before_webhooks_and_integrations(a)
    back_before_webhooks_and_integrations(b)
    execute(f"""INSERT INTO "{b.schema_name}".django_migrations (app, name, applied)
                VALUES ('integrations', '0001_initial', now())""")  # b says it has integrations: not a's state
    execute(
        f'CREATE TABLE "{b.schema_name}".integrations_integration (LIKE "{fleet["orgs"][2].schema_name}"'
        ".integrations_integration INCLUDING ALL)"
    )
    result = json.loads(orgs("migrate", "--json"))
    assert (result["failed"], result["rendered"], result["executor"]) == ({}, 1, 1), result
    assert applied_in(b.schema_name) == applied_in(a.schema_name) == set(tenant_migrations())


def test_a_failing_schema_is_rolled_back_and_reported_and_the_others_go_on(fleet):  # noqa: F811
    a, b, c = fleet["orgs"]
    for organization in (a, b, c):
        back_before_webhooks_and_integrations(organization)
    execute(f'CREATE TABLE "{b.schema_name}".webhooks_webhookendpoint (id int)')  # in the way of the CREATE TABLE
    output = orgs("migrate", "--jobs", "2", expect_exit=1)
    assert f"{b.schema_name}: FAILED" in output or b.schema_name in output
    assert "DuplicateTable" in output
    # named by organization and by the migrations it was applying
    assert f"ops-1 ({b.schema_name}): DuplicateTable" in output and "webhooks.0001_initial" in output
    assert applied_in(a.schema_name) == applied_in(c.schema_name) == set(tenant_migrations())
    # b: nothing of the failed transaction is left, and it is still recorded as behind
    assert ("webhooks", "0001_initial") not in applied_in(b.schema_name)
    assert Organization.objects.get(id=b.id).migration_state == "before-webhooks"


def behind() -> list[str]:
    return [row["slug"] for row in json.loads(orgs("list", "--json")) if row["migrations"] != "current"]


def test_a_rollout_in_cohorts_canaries_first_then_the_rest(fleet):  # noqa: F811
    for organization in fleet["orgs"]:
        back_before_webhooks_and_integrations(organization)
    assert behind() == ["ops-0", "ops-1", "ops-2"]
    canary = json.loads(orgs("migrate", "--cohort", "1", "--json"))
    assert (canary["selected"], canary["migrated"], canary["behind"]) == (1, 1, 2)
    assert behind() == ["ops-1", "ops-2"]  # the oldest went first
    named = json.loads(orgs("migrate", "--slugs", "ops-2", "--json"))
    assert (named["selected"], named["migrated"]) == (1, 1) and behind() == ["ops-1"]
    rest = json.loads(orgs("migrate", "--percent", "100", "--json"))
    assert (rest["selected"], rest["migrated"], rest["behind"]) == (1, 1, 0) and behind() == []
    assert "no drift" in orgs("check")


def test_percent_takes_at_least_one_and_unknown_slugs_are_refused(fleet):  # noqa: F811
    from django.core.management import CommandError

    for organization in fleet["orgs"]:
        back_before_webhooks_and_integrations(organization)
    assert json.loads(orgs("migrate", "--percent", "10", "--json"))["selected"] == 1
    with pytest.raises(CommandError, match="nope"):
        orgs("migrate", "--slugs", "ops-1", "nope")
    with pytest.raises(CommandError, match="percent"):
        orgs("migrate", "--percent", "0")
    assert behind() == ["ops-1", "ops-2"]


def test_a_rollout_stops_after_k_failures_and_a_later_run_resumes(fleet):  # noqa: F811
    a, b, c = fleet["orgs"]
    for organization in (a, b, c):
        back_before_webhooks_and_integrations(organization)
    for organization in (a, b):  # something in the way of the CREATE TABLE in the two oldest
        execute(f'CREATE TABLE "{organization.schema_name}".webhooks_webhookendpoint (id int)')
    output = orgs("migrate", "--stop-after-failures", "1", expect_exit=1)
    assert "stopped after 1 failures" in output
    assert behind() == ["ops-0", "ops-1", "ops-2"]  # b and c were never started
    execute(f'DROP TABLE "{a.schema_name}".webhooks_webhookendpoint')
    execute(f'DROP TABLE "{b.schema_name}".webhooks_webhookendpoint')
    resumed = json.loads(orgs("migrate", "--json"))
    assert (resumed["migrated"], resumed["failed"], resumed["behind"]) == (3, {}, 0)


def test_the_api_keeps_serving_every_organization_during_a_rollout(fleet):  # noqa: F811
    """Requests to every organization while a rollout runs in another thread: each answers 200 or, while its schema
    is behind the code, 503 with Retry-After; never a 500. After it, everything answers 200."""
    owner = fleet["owner"]
    for organization in fleet["orgs"]:
        back_before_webhooks_and_integrations(organization)
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(migrate_fleet(jobs=2)))
    paths = [f"/api/v1/organizations/ops-{i}/{what}" for i in range(3) for what in ("webhooks", "agents")]
    seen: dict[int, int] = {}
    worker.start()
    rounds = 0
    while worker.is_alive() or rounds < 3:
        for path in paths:
            response = owner.api.get(path)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code in (200, 503), (path, response.status_code, response.content)
            if response.status_code == 503:
                assert response.json()["code"] == "service_unavailable" and int(response["Retry-After"]) > 0
                assert path.endswith("/webhooks"), path  # what the schema already has keeps answering
        rounds += 1
    worker.join()
    assert outcome["failed"] == {} and outcome["rendered"] == 3, outcome
    assert seen.get(200, 0) > 0
    assert all(owner.api.get(path).status_code == 200 for path in paths)


def terminate_backend(pid: int) -> None:
    with direct_connection() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_long_transaction_holds_one_schema_back_for_a_bounded_time(fleet, settings, monkeypatch):  # noqa: F811
    """An ALTER TABLE queued behind a long transaction would make every later request on that table queue behind
    it. The rollout waits at most MIGRATION_LOCK_TIMEOUT_MS per try, retries, then reports the schema as failed;
    the others migrate, and the held organization's requests keep being answered while the transaction is open."""
    settings.MIGRATION_LOCK_TIMEOUT_MS = 200
    monkeypatch.setattr(rollout, "LOCK_RETRY_PAUSES", (0.1, 0.1))
    owner, (a, b, c) = fleet["owner"], fleet["orgs"]
    head = applied_in(a.schema_name)
    change = Rendered(applied=head, migrations=(("agents", "0999_lock_test"),),
                      statements=("ALTER TABLE agents_agent ADD COLUMN lock_test text",))  # fmt: skip
    schemas = [a.schema_name, b.schema_name, c.schema_name]
    outcome: dict = {}
    with direct_connection() as holder:
        holder.execute("BEGIN")
        holder.execute(f'SELECT count(*) FROM "{b.schema_name}".agents_agent').fetchone()  # a long report on b
        # without a bound the ALTER and every request behind it would wait for ever: end the report after a while
        # instead (the assertions below then fail rather than the test hanging)
        watchdog = threading.Timer(30, terminate_backend, [holder.info.backend_pid])
        watchdog.start()
        worker = threading.Thread(target=lambda: outcome.update(result=apply_to(schemas, change, "lock-test", jobs=2)))
        worker.start()
        answered = 0
        while worker.is_alive():
            response = owner.api.get("/api/v1/organizations/ops-1/agents")
            assert response.status_code == 200, response.content
            answered += 1
        worker.join(timeout=60)
        assert not worker.is_alive()
        # still inside the long transaction: b's requests were answered all along, not queued until it ends
        assert answered > 0
        watchdog.cancel()
        holder.execute("ROLLBACK")
    failures, fallback = outcome["result"]
    assert set(failures) == {b.schema_name} and failures[b.schema_name].startswith("LockNotAvailable"), failures
    assert fallback == []

    def columns(schema: str) -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                           "AND table_name = 'agents_agent'", [schema])  # fmt: skip
            return {name for (name,) in cursor.fetchall()}

    assert "lock_test" in columns(a.schema_name) and "lock_test" in columns(c.schema_name)
    assert "lock_test" not in columns(b.schema_name)  # rolled back whole: no column, no record, same state
    assert ("agents", "0999_lock_test") not in applied_in(b.schema_name)
    assert ("agents", "0999_lock_test") in applied_in(a.schema_name)
    assert Organization.objects.get(id=b.id).migration_state != "lock-test"
    assert Organization.objects.get(id=a.id).migration_state == "lock-test"
    # once the transaction is gone, the same schema goes through (what a resumed run does)
    assert apply_to([b.schema_name], change, "lock-test", jobs=1) == ({}, [])
    assert "lock_test" in columns(b.schema_name)


def test_a_migration_statement_that_runs_too_long_is_stopped_and_reported(fleet, settings):  # noqa: F811
    """A slow statement (a backfill, an index build on a big table) is stopped at MIGRATION_STATEMENT_TIMEOUT_MS;
    that schema is rolled back and reported by organization, the others go on."""
    settings.MIGRATION_STATEMENT_TIMEOUT_MS = 300
    a, b, c = fleet["orgs"]
    head = applied_in(a.schema_name)
    slow_on_b = (f"DO $$ BEGIN IF current_schema() = '{b.schema_name}' THEN PERFORM pg_sleep(5); END IF; END $$;",
                 "ALTER TABLE agents_agent ADD COLUMN slow_test text;")  # fmt: skip
    change = Rendered(applied=head, migrations=(("agents", "0999_slow_test"),), statements=slow_on_b)
    failures, fallback = apply_to([a.schema_name, b.schema_name, c.schema_name], change, "slow-test", jobs=2)
    assert set(failures) == {b.schema_name} and "statement timeout" in failures[b.schema_name], failures
    assert fallback == []
    assert ("agents", "0999_slow_test") not in applied_in(b.schema_name)
    assert ("agents", "0999_slow_test") in applied_in(c.schema_name)
