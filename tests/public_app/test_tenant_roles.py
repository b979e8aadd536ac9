"""PostgreSQL enforces the boundary on its own: each organization's role reaches its own schema and nothing else,
whatever path a query runs with."""

import pytest
from django.db import DatabaseError, connection, transaction

from public_app.services.fleet import drift, repair
from public_app.tenancy import tenant_context, tenant_role_name
from public_app.tenant_roles import role_exists
from tenant_apps.agents.models import Agent


def current_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def wrong_path(schema: str) -> str:
    """Point the open transaction's path somewhere else behind the backend's back."""
    return f"SELECT pg_catalog.set_config('search_path', '{schema}', true)"


def refused(*statements: str) -> str:
    """Run the statements in one transaction expecting PostgreSQL to refuse one; the message it gave."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            cursor.fetchall()
    return str(caught.value)


@pytest.mark.django_db
def test_tenant_work_runs_as_the_organizations_role(acme, globex):
    with tenant_context(acme):
        assert current_role() == acme.db_role
    with tenant_context(globex):
        assert current_role() == globex.db_role
    assert current_role() == connection.settings_dict["USER"]
    assert acme.db_role != globex.db_role
    assert acme.db_role == tenant_role_name(acme.schema_name)


@pytest.mark.django_db
def test_a_query_that_reaches_another_organizations_schema_fails_under_the_role(acme, globex):
    with tenant_context(globex):
        Agent.objects.create(name="globex secret")
    with tenant_context(acme):
        # Named outright: permission denied.
        assert "permission denied for schema" in refused(f'SELECT name FROM "{globex.schema_name}".agents_agent')
        # A wrong path (what a pooler handing over a stale session path did): the schema is invisible to the
        # role, so the table does not resolve at all, and nothing of globex comes back.
        message = refused(wrong_path(globex.schema_name), "SELECT name FROM agents_agent")
        assert 'relation "agents_agent" does not exist' in message
        # Public tables (memberships, users, keys) are out of reach too.
        assert "permission denied for table public_app_membership" in refused(
            "SELECT * FROM public.public_app_membership"
        )
        assert Agent.objects.count() == 0  # its own schema still works
    with tenant_context(globex):
        assert list(Agent.objects.values_list("name", flat=True)) == ["globex secret"]


@pytest.mark.django_db
def test_the_login_role_with_the_same_wrong_path_would_have_read_the_rows(acme, globex):
    """The control: without the role, the wrong path alone reads the other organization (what the defence stops)."""
    with tenant_context(globex):
        Agent.objects.create(name="globex secret")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(wrong_path(globex.schema_name))
        cursor.execute("SELECT name FROM agents_agent")
        assert cursor.fetchall() == [("globex secret",)]


@pytest.mark.django_db
def test_check_reports_role_drift_and_reconcile_repairs_it(acme, globex):
    assert drift.drift_check().clean
    with connection.cursor() as cursor:
        cursor.execute(f'GRANT USAGE ON SCHEMA "{globex.schema_name}" TO "{acme.db_role}"')
        cursor.execute(f'GRANT SELECT ON "{globex.schema_name}".agents_agent TO "{acme.db_role}"')
        cursor.execute(f'REVOKE SELECT ON "{globex.schema_name}".leads_lead FROM "{globex.db_role}"')
        cursor.execute(f'GRANT USAGE ON "{globex.schema_name}".agents_agent_id_seq TO "{acme.db_role}"')
        cursor.execute(f'GRANT "{globex.db_role}" TO "{acme.db_role}"')  # globex's privileges, by membership
    report = drift.drift_check()
    assert report.extra_grants == {
        "acme": [f"SELECT on {globex.schema_name}.agents_agent", f"USAGE on schema {globex.schema_name}",
                 f"USAGE on {globex.schema_name}.agents_agent_id_seq", f"member of {globex.db_role}"]
    }  # fmt: skip
    assert report.role_grants_missing == ["globex"]
    assert report.missing_grants == {"globex": [f"SELECT on {globex.schema_name}.leads_lead"]}
    result = repair.reconcile_apply(repair.reconcile_plan(), backup_dir=None)
    assert [(s["action"], s["target"]) for s in result["done"]] == [("repair_role", "acme"), ("repair_role", "globex")]
    assert drift.drift_check().clean
    with tenant_context(acme):
        assert "permission denied for schema" in refused(f'SELECT 1 FROM "{globex.schema_name}".agents_agent')


@pytest.mark.django_db
def test_check_reports_a_missing_role_and_an_orphan_role(acme, globex):
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{acme.db_role}"; DROP ROLE "{acme.db_role}"')
        cursor.execute(f'CREATE ROLE "{tenant_role_name("t_gone")}" NOLOGIN')
    report = drift.drift_check()
    assert report.missing_roles == ["acme"]
    assert report.orphan_roles == [tenant_role_name("t_gone")]
    repair.reconcile_apply(repair.reconcile_plan(), backup_dir=None)
    assert drift.drift_check().clean
    assert role_exists(acme.schema_name) and not role_exists("t_gone")


@pytest.mark.django_db
def test_purge_drops_the_role_with_the_schema(acme):
    from public_app.services.fleet.repair import purge_now

    assert role_exists(acme.schema_name)
    assert purge_now(organization=acme)
    assert not role_exists(acme.schema_name)
