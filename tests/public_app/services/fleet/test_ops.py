"""`manage.py orgs ...` against real schemas (these tests commit, so they clean their schemas up)."""

import json
import stat
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from public_app.models import Membership, Organization, OrganizationStatus, Role
from public_app.services.provisioning import tenant_migrations
from public_app.tenancy import tenant_context
from tenant_apps.agents.models import Agent
from tests.conftest import drop_tenant_schemas, make_org, make_persona


@pytest.fixture
def fleet(transactional_db, tenant_template, settings, tmp_path):
    settings.SNAPSHOT_DIR = tmp_path / "snapshots"  # backups taken by purge, reconcile and discard
    owner = make_persona("owner@example.com", "Owner")
    member = make_persona("member@example.com", "Member")
    orgs = [make_org(owner.user, f"ops-{i}") for i in range(3)]
    Membership.objects.create(organization=orgs[0], user=member.user, role=Role.MEMBER)
    with tenant_context(orgs[0]):
        Agent.objects.create(name="Exported agent")
        Agent.objects.create(name="Second agent")
    yield {"owner": owner, "member": member, "orgs": orgs}
    connection.set_schema_to_public()
    drop_tenant_schemas()


def orgs(*args, expect_exit: int | None = None) -> str:
    out = StringIO()
    if expect_exit is None:
        call_command("orgs", *args, stdout=out)
    else:
        with pytest.raises(SystemExit) as exc:
            call_command("orgs", *args, stdout=out)
        assert exc.value.code == expect_exit
    return out.getvalue()


def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def test_list_and_show(fleet):
    rows = json.loads(orgs("list", "--json"))
    assert [r["slug"] for r in rows] == ["ops-0", "ops-1", "ops-2"]
    first = rows[0]
    assert (first["status"], first["members"], first["plan"], first["migrations"]) == ("active", 2, "free", "current")
    assert first["schema"] == fleet["orgs"][0].schema_name and first["schema_bytes"] > 0
    assert json.loads(orgs("list", "--json", "--status", "failed")) == []
    shown = json.loads(orgs("show", "ops-0", "--json"))
    assert shown["tables"]["agents_agent"] == 2
    assert "ops-0" in orgs("list")
    assert "agents_agent" in orgs("show", "ops-0")


def test_provision_and_retry_failed(fleet, monkeypatch):
    owner = fleet["owner"].user
    broken = Organization.objects.create(name="Broken", slug="broken", status=OrganizationStatus.FAILED,
                                         status_reason="disk full")  # fmt: skip
    stuck = Organization.objects.create(name="Stuck", slug="stuck")
    for organization in (broken, stuck):
        Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    assert json.loads(orgs("provision", "broken", "--json")) == {"slug": "broken", "status": "active"}
    results = json.loads(orgs("retry-failed", "--json"))
    assert results == [{"slug": "stuck", "status": "active"}]
    # one that still fails: reported, and the exit code says so (scripts and cron jobs see it)
    Organization.objects.create(name="Still", slug="still", status=OrganizationStatus.FAILED)

    def refuse(**kwargs):
        raise RuntimeError("no space left on device")

    monkeypatch.setattr("public_app.services.fleet.repair.organization_provision", refuse)
    output = orgs("retry-failed", expect_exit=1)
    assert "still: failed" in output and "1 of 1 still not active" in output
    with pytest.raises(CommandError, match="no organization"):
        call_command("orgs", "provision", "nope")


def test_migrate_skips_current_schemas_and_reports_every_failure(fleet):
    a, b, c = fleet["orgs"]
    assert json.loads(orgs("migrate", "--json"))["skipped"] == 3
    Organization.objects.filter(id__in=[a.id, b.id]).update(migration_state="old")
    result = json.loads(orgs("migrate", "--jobs", "2", "--json"))
    assert (result["migrated"], result["skipped"], result["failed"]) == (2, 1, {})
    # one schema fails (it is gone); the others still run, and the exit code says so
    Organization.objects.filter(id__in=[a.id, c.id]).update(migration_state="old")
    execute(f'DROP SCHEMA "{a.schema_name}" CASCADE')
    output = orgs("migrate", "--jobs", "2", expect_exit=1)
    assert f"{a.schema_name}: FAILED" in output and "migrated 1" in output
    assert Organization.objects.get(id=c.id).migration_state != "old"


def test_check_reports_drift_and_reconcile_fixes_it(fleet):
    a, b, c = fleet["orgs"]
    assert "no drift" in orgs("check")
    execute('CREATE SCHEMA "t_scratch"')  # a DBA's, under our prefix: not ours, never touched
    Organization.objects.filter(id=a.id).delete()  # the row deleted by hand: its schema is an orphan of ours
    execute(f'ALTER TABLE "{b.schema_name}".agents_agent DROP COLUMN voice')
    execute(f"DELETE FROM \"{c.schema_name}\".django_migrations WHERE app = 'leads'")
    Organization.objects.create(name="Failed", slug="ops-failed", status=OrganizationStatus.FAILED)
    Organization.objects.create(name="In flight", slug="ops-new")  # being provisioned right now: not drift
    stuck = Organization.objects.create(name="Stuck", slug="ops-stuck")
    Organization.objects.filter(id=stuck.id).update(created_at=timezone.now() - timedelta(hours=1))
    report = json.loads(orgs("check", "--json", expect_exit=1))
    assert report["unprovisioned"] == ["ops-failed", "ops-stuck"]
    assert report["orphan_schemas"] == [a.schema_name]
    assert report["unknown_schemas"] == ["t_scratch"]
    assert report["structure_differs"] == ["ops-1"]
    leads_migrations = sorted(f"{app}.{name}" for app, name in tenant_migrations() if app == "leads")
    assert report["missing_migrations"] == {"ops-2": leads_migrations}
    planned = json.loads(orgs("reconcile", "--json"))  # a dry run: changes nothing
    assert not planned["applied"]
    assert [(s["action"], s["target"]) for s in planned["steps"]] == [
        ("provision", "ops-failed"), ("provision", "ops-stuck"), ("record_migrations", "ops-2")]
    assert json.loads(orgs("check", "--json", expect_exit=1)) == report
    result = json.loads(orgs("reconcile", "--apply", "--yes", "--json", expect_exit=1))  # drift is left: exit 1
    assert [(s["action"], s["target"]) for s in result["done"]] == [
        ("provision", "ops-failed"), ("provision", "ops-stuck"), ("record_migrations", "ops-2")]
    assert result["failed"] == []
    assert result["left"]["orphan_schemas"] == [a.schema_name]  # only dropped when asked
    # a dropped column is not something migrations can put back: it is left for a person, and said so
    assert result["left"]["structure_differs"] == ["ops-1"]
    assert {h["target"] for h in result["needs_human"]} == {"ops-1", a.schema_name}
    orgs("reconcile", "--drop-orphans", "--apply", "--yes", "--json", expect_exit=1)
    remaining = json.loads(orgs("check", "--json", expect_exit=1))
    assert remaining["orphan_schemas"] == [] and remaining["missing_schemas"] == []
    assert remaining["unknown_schemas"] == ["t_scratch"]
    assert remaining["structure_differs"] == ["ops-1"]


def test_export_then_import_under_a_new_schema(fleet, tmp_path):
    source = fleet["orgs"][0]
    archive = tmp_path / "ops-0.tar.gz"
    assert json.loads(orgs("export", "ops-0", str(archive), "--json"))["members"] == 2
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # key and invitation hashes inside
    imported = json.loads(orgs("import", str(archive), "--slug", "ops-copy", "--json"))
    copy = Organization.objects.get(slug="ops-copy")
    assert imported["schema"] == copy.schema_name != source.schema_name
    assert copy.status == OrganizationStatus.ACTIVE
    with tenant_context(copy):
        assert sorted(Agent.objects.values_list("name", flat=True)) == ["Exported agent", "Second agent"]
        Agent.objects.create(name="Only in the copy")  # sequences came along: ids do not collide
    with tenant_context(source):
        assert Agent.objects.count() == 2
    roles = dict(Membership.objects.filter(organization=copy).values_list("user__email", "role"))
    assert roles == {"owner@example.com": "owner", "member@example.com": "member"}
    owner_api = fleet["owner"].api
    names = [a["name"] for a in owner_api.get("/api/v1/organizations/ops-copy/agents").json()["items"]]
    assert names == ["Only in the copy", "Second agent", "Exported agent"]
    assert "no drift" in orgs("check")


def test_purge_asks_unless_yes(fleet, monkeypatch):
    target = fleet["orgs"][2]
    monkeypatch.setattr("builtins.input", lambda *prompt: "wrong")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="not confirmed"):
        call_command("orgs", "purge", "ops-2", "--json", stdout=out, stderr=err)
    assert out.getvalue() == "" and "Type the slug" in err.getvalue()  # the question never mixes into --json output

    def no_terminal(*prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)  # run from a script or cron: nobody to answer
    with pytest.raises(CommandError, match=r"no terminal.*--yes"):
        call_command("orgs", "purge", "ops-2", stdout=StringIO(), stderr=StringIO())
    assert Organization.objects.filter(id=target.id).exists()
    result = json.loads(orgs("purge", "ops-2", "--yes", "--json"))
    assert (result["slug"], result["purged"]) == ("ops-2", True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [target.schema_name])
        assert cursor.fetchone() is None
