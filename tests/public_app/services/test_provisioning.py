"""The provisioning job on a real worker and broker: creates the schema, is idempotent, survives crashes."""

import time

import dramatiq
import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_exists

from jobs.provisioning import provision_organization
from public_app.models import Organization, OrganizationStatus
from public_app.services import provisioning
from public_app.services.organizations import organization_create
from tests.conftest import make_persona, wait_for_jobs

CATALOG_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default,
               is_identity, identity_generation
        FROM information_schema.columns WHERE table_schema = %s ORDER BY table_name, column_name""",
    "indexes": """
        SELECT tablename, indexname, regexp_replace(indexdef, ' ON [^ ]+\\.', ' ON ')
        FROM pg_indexes WHERE schemaname = %s ORDER BY indexname""",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = %s ORDER BY c.conname""",
    "sequences": """
        SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences
        WHERE sequence_schema = %s ORDER BY sequence_name""",
    "migrations": "SELECT app, name FROM {schema}.django_migrations ORDER BY app, name",
}


def catalog(schema: str) -> dict:
    from public_app.tenancy import schema_context

    result = {}
    # constraint definitions name other tables unqualified only when their schema is on the search path
    with transaction.atomic(), schema_context(schema, as_tenant=False), connection.cursor() as cursor:
        for name, query in CATALOG_QUERIES.items():
            if "{schema}" in query:
                cursor.execute(query.format(schema=f'"{schema}"'))
            else:
                cursor.execute(query, [schema])
            result[name] = cursor.fetchall()
    return result


def test_end_to_end_signup_create_job_active_agents(worker, client):
    from tests.conftest import Api

    api = Api()
    signup = api.post("/api/v1/auth/signup", {"email": "e2e@example.com", "password": "a-strong-pass-91", "name": "E"})
    api.token = signup.json()["token"]
    started = time.monotonic()
    created = api.post("/api/v1/organizations", {"name": "E2E", "slug": "e2e-org"})
    assert created.status_code == 202
    assert created.json()["status"] == "provisioning"
    wait_for_jobs(worker)
    assert api.get("/api/v1/organizations/e2e-org").json()["status"] == "active"
    print(f"create → active: {time.monotonic() - started:.3f}s")
    assert api.post("/api/v1/organizations/e2e-org/agents", {"name": "Ann"}).status_code == 201
    assert [a["name"] for a in api.get("/api/v1/organizations/e2e-org/agents").json()["items"]] == ["Ann"]


def test_job_creates_the_schema_and_marks_active(worker):
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Job", slug="job-org")
    wait_for_jobs(worker)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.ACTIVE
    assert organization.provisioned_at is not None
    assert schema_exists(organization.schema_name)


def test_running_the_job_twice_ends_in_the_same_state(worker):
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Twice", slug="twice")
    provision_organization.send(organization.id)
    provision_organization.send(organization.id)
    wait_for_jobs(worker)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.ACTIVE
    before = catalog(organization.schema_name)
    provisioning.organization_provision(organization_id=organization.id)
    assert catalog(organization.schema_name) == before


def test_job_after_a_crash_following_schema_creation_completes_the_schema(transactional_db, tenant_template):
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Crash", slug="crash")
    # the crash: the schema was created (and committed) but nothing else happened
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{organization.schema_name}"')
    try:
        provisioning.organization_provision(organization_id=organization.id)
        organization.refresh_from_db()
        assert organization.status == OrganizationStatus.ACTIVE
        with organization, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM agents_agent")
            assert cursor.fetchone() == (0,)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{organization.schema_name}" CASCADE')


def test_a_crash_inside_the_schema_transaction_leaves_nothing_behind(transactional_db, tenant_template, monkeypatch):
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Half", slug="half")

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(provisioning, "organization_mark_active", crash)
    with pytest.raises(RuntimeError):
        provisioning.organization_provision(organization_id=organization.id)
    assert not schema_exists(organization.schema_name)
    monkeypatch.undo()
    provisioning.organization_provision(organization_id=organization.id)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.ACTIVE
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{organization.schema_name}" CASCADE')


def test_failing_provisioning_is_retried_then_marked_failed_with_the_reason(worker, monkeypatch):
    attempts = []

    def broken(schema_name, template):
        attempts.append(schema_name)
        raise RuntimeError("disk full")

    monkeypatch.setattr(provisioning, "schema_create_from_template", broken)
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Doomed", slug="doomed")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        organization.refresh_from_db()
        if organization.status == OrganizationStatus.FAILED:
            break
        time.sleep(0.1)
    wait_for_jobs(worker)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.FAILED
    assert "disk full" in organization.status_reason
    assert len(attempts) == 3  # the first try and PROVISION_MAX_RETRIES=2 retries
    assert not schema_exists(organization.schema_name)


def test_the_recorded_reason_is_the_error_not_its_detail_line(worker, monkeypatch):
    """Citus refused the replay with a message and a DETAIL line; the traceback's last line (the DETAIL) was stored."""

    def refused(schema_name, template):
        with connection.cursor() as cursor:
            cursor.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'alter table command is currently unsupported' "
                "USING DETAIL = 'Only ADD|DROP COLUMN, SET|DROP NOT NULL are supported.'; END $$"
            )

    monkeypatch.setattr(provisioning, "schema_build", refused)
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Refused", slug="refused")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and organization.status != OrganizationStatus.FAILED:
        time.sleep(0.1)
        organization.refresh_from_db()
    wait_for_jobs(worker)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.FAILED
    assert (
        organization.status_reason
        == "ProgrammingError: alter table command is currently unsupported (after 3 attempts)"
    )


def test_a_replay_the_database_refuses_falls_back_to_the_migrations(
    transactional_db, tenant_template, monkeypatch, settings
):
    """On an engine that rejects a statement of the template, the organization is still provisioned (by the
    migrations, inside the same transaction), and later schemas skip the replay."""
    import dataclasses

    template = provisioning.template_get()
    refused = dataclasses.replace(
        template, ddl=template.ddl + "ALTER TABLE __tenant_schema__.agents_agent ALTER COLUMN id SET DATA TYPE nope;\n"
    )
    monkeypatch.setattr(provisioning, "template_get", lambda: refused)
    monkeypatch.setattr(provisioning, "_replay_failed", set())
    settings.TENANT_SPARE_SCHEMAS = 0  # a spare left by another test would be claimed instead of built
    migrated = []
    real_migrate = provisioning.migrate_schema
    monkeypatch.setattr(provisioning, "migrate_schema", lambda schema: (migrated.append(schema), real_migrate(schema)))
    owner = make_persona("o@example.com", "O").user
    first = organization_create(user=owner, name="First", slug="first-refused")
    second = organization_create(user=owner, name="Second", slug="second-refused")
    try:
        for organization in (first, second):
            provisioning.organization_provision(organization_id=organization.id)
            organization.refresh_from_db()
            assert organization.status == OrganizationStatus.ACTIVE
            assert catalog(organization.schema_name) == catalog("tenant_template")
        # Both built by the migrations, once each (the test's worker may pick up the second one first).
        assert sorted(migrated) == sorted([first.schema_name, second.schema_name])
        assert provisioning._replay_failed == {template.state}
        with first, connection.cursor() as cursor:
            cursor.execute("INSERT INTO agents_agent (uid, created_at, updated_at, name, status, language, voice, "
                           "prompt) VALUES ('agt_1', now(), now(), 'a', 'active', 'en', '', '') "
                           "RETURNING id")  # fmt: skip
            assert cursor.fetchone() == (1,)
    finally:
        with connection.cursor() as cursor:
            for organization in (first, second):
                cursor.execute(f'DROP SCHEMA IF EXISTS "{organization.schema_name}" CASCADE')


def test_template_clone_is_identical_to_a_migrated_schema(transactional_db, tenant_template):
    template = provisioning.template_get()
    try:
        provisioning.schema_create_from_template("t_cloned", template)
        with connection.cursor() as cursor:
            cursor.execute('CREATE SCHEMA "t_migrated"')
        provisioning.migrate_schema("t_migrated")
        cloned, migrated = catalog("t_cloned"), catalog("t_migrated")
        assert cloned["columns"] and cloned["indexes"] and cloned["constraints"]
        assert cloned == migrated
    finally:
        with connection.cursor() as cursor:
            cursor.execute('DROP SCHEMA IF EXISTS "t_cloned" CASCADE')
            cursor.execute('DROP SCHEMA IF EXISTS "t_migrated" CASCADE')


def test_ddl_is_top_level_statements_without_do_blocks_or_functions(tenant_template):
    ddl = provisioning.template_get().ddl
    assert "CREATE TABLE __tenant_schema__.agents_agent" in ddl
    assert "DO $$" not in ddl and "FUNCTION" not in ddl.upper()
    assert "tenant_template" not in ddl
    # identity is declared in CREATE TABLE (Citus rejects ALTER TABLE … ADD GENERATED in a distributed schema)
    assert "ADD GENERATED" not in ddl and "ALTER COLUMN" not in ddl
    assert "GENERATED BY DEFAULT AS IDENTITY" in ddl


SEEN_BY_JOB: list[tuple[str, str]] = []


@dramatiq.actor(queue_name="default", max_retries=0)
def record_schema_and_create_agent(organization_id: int | None = None) -> None:
    """A tenant actor as they all are: it takes the organization's id and enters its context itself."""
    from public_app.tenancy import tenant_context
    from tenant_apps.agents.models import Agent

    def record() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('search_path'), current_user")
            SEEN_BY_JOB.append((connection.schema_name, *cursor.fetchone()))

    if organization_id is None:
        record()
        return
    with tenant_context(Organization.objects.get(id=organization_id)):
        record()
        Agent.objects.create(name="made by a job")


def test_jobs_run_in_the_organization_they_name_as_its_role_and_start_in_public(worker):
    from tenant_apps.agents.models import Agent

    owner = make_persona("o@example.com", "O").user
    a = organization_create(user=owner, name="A", slug="tenant-a")
    b = organization_create(user=owner, name="B", slug="tenant-b")
    wait_for_jobs(worker)
    a.refresh_from_db()
    b.refresh_from_db()
    SEEN_BY_JOB.clear()
    with a:  # sent from inside tenant a: nothing of that reaches the job
        record_schema_and_create_agent.send()
    record_schema_and_create_agent.send(a.id)
    record_schema_and_create_agent.send(b.id)
    wait_for_jobs(worker, timeout_ms=5000)
    login = connection.settings_dict["USER"] or "postgres"
    assert sorted(SEEN_BY_JOB) == sorted([
        ("public", "public", login),
        (a.schema_name, f"{a.schema_name}, public", a.db_role),
        (b.schema_name, f"{b.schema_name}, public", b.db_role),
    ])  # fmt: skip
    for organization in (a, b):
        with organization:
            assert list(Agent.objects.values_list("name", flat=True)) == ["made by a job"]
