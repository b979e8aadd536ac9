"""The repair path under the incidents of issue 24: an organization row deleted by hand, a schema dropped, two
operators at once. Each test is a finding that failed before its fix."""

import json
import stat
import subprocess
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from public_app.leases import lease_acquire, lease_release
from public_app.models import OpsRecord, Organization, OrganizationStatus
from public_app.pgtools import pg_connection_args, pg_tool
from public_app.services.fleet.guard import FLEET_LOCK
from public_app.services.provisioning import tenant_migrations
from public_app.tenancy import tenant_context
from tenant_apps.agents.models import Agent
from tests.public_app.services.fleet.test_ops import execute, fleet, orgs  # noqa: F401 - the fixture


def schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        return {row[0] for row in cursor.fetchall()}


def agents_in(schema: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{schema}".agents_agent')
        return cursor.fetchone()[0]


@pytest.fixture
def orphan(fleet):  # noqa: F811
    """ops-0 (two agents) with its organization row deleted by hand, and a DBA's scratch schema under our prefix."""
    victim = fleet["orgs"][0]
    with tenant_context(victim):
        for i in range(8):
            Agent.objects.create(name=f"Agent {i}")
    Organization.objects.filter(id=victim.id).delete()
    execute('CREATE SCHEMA "t_scratch"')
    execute('CREATE TABLE "t_scratch".notes (id int)')
    return victim


def test_reconcile_never_drops_a_schema_with_data_without_yes_and_keeps_a_usable_backup(orphan, settings, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    settings.SNAPSHOT_DIR = tmp_path
    # 1. the default is a dry run that shows what would be lost: the former organization, rows, size
    out = orgs("reconcile", "--drop-orphans")
    assert f"would drop_orphan {orphan.schema_name}" in out and "former organization ops-0" in out
    assert "10 rows" in out and "left alone: t_scratch" in out and "nothing changed" in out
    assert {orphan.schema_name, "t_scratch"} <= schemas()
    # 2. --apply asks; with nobody to answer (a script, cron) it refuses and changes nothing
    monkeypatch.setattr("builtins.input", lambda *prompt: (_ for _ in ()).throw(EOFError))
    with pytest.raises(CommandError, match="--yes"):
        call_command("orgs", "reconcile", "--drop-orphans", "--apply", stdout=StringIO(), stderr=StringIO())
    assert {orphan.schema_name, "t_scratch"} <= schemas()
    # 3. confirmed: exported first (readable by its owner only), then dropped; the scratch schema is not ours
    result = json.loads(orgs("reconcile", "--drop-orphans", "--apply", "--yes", "--json"))
    (dropped,) = [step for step in result["done"] if step["action"] == "drop_orphan"]
    assert dropped["action"] == "drop_orphan" and dropped["details"]["former_organization"]["slug"] == "ops-0"
    backup = Path(dropped["backup"])
    assert backup.parent == tmp_path / "orphans" and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert orphan.schema_name not in schemas() and "t_scratch" in schemas()
    # 4. the backup brings it back as it was
    env, args = pg_connection_args()
    database = str(connection.settings_dict["NAME"])
    restored = subprocess.run([pg_tool("pg_restore"), *args, "--dbname", database, str(backup)],
                              env=env, check=False, capture_output=True, text=True)  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert agents_in(orphan.schema_name) == 10
    orgs("reattach", orphan.schema_name, "--owner", "owner@example.com")
    assert Organization.objects.get(slug="ops-0").status == OrganizationStatus.ACTIVE
    assert "no drift" in orgs("check")


def test_reconcile_without_backup_only_when_asked(orphan, settings, tmp_path):
    settings.SNAPSHOT_DIR = tmp_path
    result = json.loads(orgs("reconcile", "--drop-orphans", "--apply", "--yes", "--no-backup", "--json"))
    assert "backup" not in result["done"][0] and not (tmp_path / "orphans").exists()
    assert orphan.schema_name not in schemas()


def test_an_active_organization_whose_schema_is_gone_is_not_reprovisioned_empty(fleet):  # noqa: F811
    lost = fleet["orgs"][1]
    execute(f'DROP SCHEMA "{lost.schema_name}" CASCADE')
    result = json.loads(orgs("reconcile", "--apply", "--yes", "--json", expect_exit=1))
    assert [s["action"] for s in result["done"]] == ["drop_role"] and lost.schema_name not in schemas()
    (human,) = [h for h in result["needs_human"] if h["target"] == "ops-1"]
    assert "orgs restore ops-1" in human["command"] and "--empty" in human["command"]
    with pytest.raises(CommandError, match="its data is gone"):
        orgs("provision", "ops-1")
    assert lost.schema_name not in schemas()
    assert json.loads(orgs("provision", "ops-1", "--empty", "--json"))["status"] == "active"
    assert agents_in(lost.schema_name) == 0


def test_an_orphan_is_reattached_to_its_organization_with_its_data(orphan, fleet):  # noqa: F811
    with pytest.raises(CommandError, match="--owner"):
        orgs("reattach", orphan.schema_name)
    result = json.loads(orgs("reattach", orphan.schema_name, "--owner", "owner@example.com", "--json"))
    assert result["slug"] == "ops-0" and result["status"] == "active"
    back = Organization.objects.get(slug="ops-0")
    assert back.schema_name == result["schema"] != orphan.schema_name
    with tenant_context(back):
        assert Agent.objects.count() == 10
    names = [a["name"] for a in fleet["owner"].api.get("/api/v1/organizations/ops-0/agents?limit=50").json()["items"]]
    assert len(names) == 10
    with pytest.raises(CommandError, match="not an orphaned schema of ours"):
        orgs("reattach", "t_scratch", "--slug", "ops-scratch", "--owner", "owner@example.com")
    report = json.loads(orgs("check", "--json"))
    assert report["orphan_schemas"] == [] and report["unknown_schemas"] == ["t_scratch"]


def test_a_second_changing_command_is_refused_and_told_who_holds_the_lock(fleet):  # noqa: F811
    holder = "alice@ops-1 pid 4242: orgs migrate"
    assert lease_acquire(FLEET_LOCK, holder, timedelta(minutes=5))
    try:
        with pytest.raises(CommandError, match="alice@ops-1 pid 4242: orgs migrate"):
            orgs("migrate", "--jobs", "2")
        with pytest.raises(CommandError, match="holds the lock"):
            orgs("purge", "ops-2", "--yes")
        assert Organization.objects.filter(slug="ops-2").exists()
        orgs("list")  # reading is never locked out
        orgs("reconcile")  # nor is a dry run
    finally:
        lease_release(FLEET_LOCK, holder)
    orgs("migrate", "--jobs", "2")
    assert not lease_acquire(FLEET_LOCK, holder, timedelta(minutes=5)) or lease_release(FLEET_LOCK, holder) is None


def test_every_ops_command_is_recorded_with_who_what_and_outcome(fleet, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ORGS_OPERATOR", "carol")
    orgs("list")
    with pytest.raises(CommandError):
        orgs("show", "no-such-org")
    execute(f'ALTER TABLE "{fleet["orgs"][1].schema_name}".agents_agent DROP COLUMN voice')
    orgs("check", expect_exit=1)
    orgs("purge", "ops-2", "--yes")
    history = json.loads(orgs("history", "--json"))
    assert [(h["action"], h["outcome"]) for h in history] == [
        ("orgs purge", "ok"), ("orgs check", "failed"), ("orgs show", "refused"), ("orgs list", "ok")]
    assert all(h["actor"].startswith("carol@") and h["finished_at"] for h in history)
    assert history[0]["arguments"] == {"slug": "ops-2", "yes": True} and history[0]["slugs"] == ["ops-2"]
    assert "no organization" in history[2]["result"]["error"]
    assert [h["action"] for h in json.loads(orgs("history", "--slug", "ops-2", "--json"))] == ["orgs purge"]
    assert "carol@" in orgs("history") and OpsRecord.objects.filter(action="orgs history").count() == 0
    assert Organization.objects.filter(status=OrganizationStatus.ACTIVE).count() == 2


def test_check_names_every_object_that_differs_with_the_statement_that_fixes_it(fleet):  # noqa: F811
    b = fleet["orgs"][1]
    s = f'"{b.schema_name}"'
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [f"{b.schema_name}.campaigns_campaign"],
        )
        (foreign_key,) = cursor.fetchone()
    damage = [
        f"DROP INDEX {s}.agent_status_id_idx",  # an index
        f"DROP INDEX {s}.lead_unique_external_id",  # the unique index behind Leadsforce de-duplication
        f"ALTER TABLE {s}.campaigns_campaign DROP CONSTRAINT {foreign_key}",  # a foreign key
        f"ALTER TABLE {s}.agents_agent ALTER COLUMN voice TYPE varchar(300)",  # a type
        f"ALTER TABLE {s}.agents_agent ALTER COLUMN name DROP NOT NULL",  # nullability
        f"ALTER TABLE {s}.agents_agent ALTER COLUMN language SET DEFAULT 'fr'",  # a default
        f"ALTER TABLE {s}.agents_agent ADD COLUMN legacy text",  # left by a release that was rolled back
        f"ALTER SEQUENCE {s}.agents_agent_id_seq INCREMENT BY 5",  # a sequence
    ]
    for statement in damage:
        execute(statement)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace")
        namespaces = cursor.fetchone()[0]
    report = json.loads(orgs("check", "--json", expect_exit=1))
    assert report["structure_differs"] == ["ops-1"]
    found = {d["object"]: d["fix"] for d in report["differences"]["ops-1"]}
    assert set(found) == {
        "missing index agent_status_id_idx",
        "missing index lead_unique_external_id",
        f"missing constraint campaigns_campaign.{foreign_key}",
        "differs column agents_agent.voice: 'character varying(300) NOT NULL', should be "
        "'character varying(200) NOT NULL'",
        "differs column agents_agent.name: 'character varying(200)', should be 'character varying(200) NOT NULL'",
        "differs column agents_agent.language: \"character varying(35) NOT NULL DEFAULT 'fr'::character varying\", "
        "should be 'character varying(35) NOT NULL'",
        "unexpected column agents_agent.legacy",
        "differs sequence agents_agent_id_seq: 'bigint increment 5', should be 'bigint increment 1'",
    }, found
    assert found["missing index lead_unique_external_id"] == (
        f"CREATE UNIQUE INDEX lead_unique_external_id ON {s}.leads_lead USING btree (source, external_id) "
        "WHERE (NOT ((external_id)::text = ''::text));"
    )
    text = orgs("check", expect_exit=1)
    assert "ops-1: missing index agent_status_id_idx" in text and "fix: CREATE INDEX agent_status_id_idx" in text
    with connection.cursor() as cursor:  # read-only: the reference schema was rolled back, nothing was added
        cursor.execute("SELECT count(*) FROM pg_namespace")
        assert cursor.fetchone()[0] == namespaces
    for fix in found.values():  # the fixes are exact: applied as printed, the schema is what its migrations define
        execute(fix.split("  --")[0])
    assert "no drift" in orgs("check")


def test_check_sees_a_dropped_table_and_list_shows_what_is_really_there(fleet):  # noqa: F811
    a, b, _ = fleet["orgs"]
    execute(f'DROP TABLE "{b.schema_name}".phone_numbers_phonenumber')
    execute(f'DROP SCHEMA "{a.schema_name}" CASCADE')
    report = json.loads(orgs("check", "--json", expect_exit=1))
    assert report["differences"]["ops-1"] == [
        {"object": "missing table phone_numbers_phonenumber",
         "fix": "its rows are gone with it: see README, Incidents: a dropped table"}]  # fmt: skip
    listed = {row["slug"]: row["migrations"] for row in json.loads(orgs("list", "--json"))}
    assert listed == {"ops-0": "no schema", "ops-1": "tables missing", "ops-2": "current"}


def test_the_dropped_table_runbook_brings_the_table_back_from_a_snapshot(fleet, tmp_path):  # noqa: F811
    victim = fleet["orgs"][0]
    s = f'"{victim.schema_name}"'
    execute(f"INSERT INTO {s}.phone_numbers_phonenumber (uid, e164, label, created_at, updated_at) "
            "VALUES ('pn_1', '+15550100', 'main', now(), now())")  # fmt: skip
    snapshot = tmp_path / "before.tar.gz"
    orgs("snapshot", "ops-0", str(snapshot))
    execute(f"DROP TABLE {s}.phone_numbers_phonenumber")
    with tenant_context(victim):
        Agent.objects.create(name="Written after the snapshot")  # must survive the repair
    orgs("restore", "ops-0", "--from", str(snapshot), "--side-by-side")
    execute(f'ALTER TABLE "{victim.schema_name}__restore".phone_numbers_phonenumber SET SCHEMA {s}')
    orgs("restore", "ops-0", "--discard", "--yes")
    report = json.loads(orgs("check", "--json", expect_exit=1))
    # the foreign key to agents went with the staged copy; the moved table's grants are the staged role's
    assert [d["object"] for d in report["differences"]["ops-0"]] == [
        "missing constraint phone_numbers_phonenumber.phone_numbers_phonenumber_agent_id_2bc8e1a9_fk_agents_agent_id"]
    assert report["role_grants_missing"] == ["ops-0"]
    orgs("reconcile", "--apply", "--yes", expect_exit=1)  # repairs the grants; the constraint is for a person
    for difference in report["differences"]["ops-0"]:
        execute(difference["fix"])
    assert "no drift" in orgs("check")
    with tenant_context(victim), connection.cursor() as cursor:
        cursor.execute("SELECT e164 FROM phone_numbers_phonenumber")
        assert cursor.fetchall() == [("+15550100",)]
    with tenant_context(victim):
        assert Agent.objects.filter(name="Written after the snapshot").exists()


@pytest.mark.parametrize("argv", [
    ["delete_tenant", "--noinput"], ["create_tenant", "--help"], ["clone_tenant", "--help"],
    ["tenant_command", "migrate", "--fake", "-s", "t_x"], ["all_tenants_command", "check"],
])  # fmt: skip
def test_django_tenants_commands_that_bypass_our_rules_refuse_and_name_the_safe_one(fleet, argv, capsys):  # noqa: F811
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as exit_:
        ManagementUtility(["manage.py", *argv]).execute()
    assert exit_.value.code == 2
    assert "Instead: " in capsys.readouterr().err
    assert Organization.objects.filter(status=OrganizationStatus.ACTIVE).count() == 3  # nothing was deleted


def test_plain_migrate_migrates_the_public_schema_and_says_what_to_run_for_tenants(fleet):  # noqa: F811
    a, b, _ = fleet["orgs"]
    execute(f'DROP SCHEMA "{a.schema_name}" CASCADE')  # django-tenants' migrate crashed on this
    Organization.objects.filter(id=b.id).update(migration_state="older")
    out = StringIO()
    call_command("migrate", interactive=False, stdout=out)
    assert "1 organization(s) behind" in out.getvalue() and "orgs migrate" in out.getvalue()
    with pytest.raises(CommandError, match="tenant app"):
        call_command("migrate", "agents", "zero", interactive=False, stdout=StringIO())
    with pytest.raises(CommandError, match="orgs migrate"):
        call_command("migrate_schemas", tenant=True, interactive=False, stdout=StringIO())
    assert agents_in(b.schema_name) == 0  # the tenant tables are untouched


def test_orgs_sql_reads_each_organization_as_itself_only_and_never_writes(fleet):  # noqa: F811
    out = json.loads(orgs("sql", "SELECT count(*) AS agents FROM agents_agent", "--json"))
    assert out["columns"] == ["organization", "agents"]
    assert out["rows"] == [["ops-0", 2], ["ops-1", 0], ["ops-2", 0]] and out["failed"] == {}
    text = orgs("sql", "SELECT name FROM agents_agent ORDER BY name", "--slugs", "ops-0")
    assert "ops-0         Exported agent" in text and "(2 rows)" in text
    a = fleet["orgs"][0]
    refused = {  # each fails in every organization, and nothing changes
        "DELETE FROM agents_agent RETURNING id": "read-only transaction",
        "SELECT 1; RESET ROLE": "multiple commands",
        "SELECT count(*) FROM public.public_app_user": "permission denied",
        f'SELECT count(*) FROM "{a.schema_name}".agents_agent': "permission denied",  # another organization's
        "SELECT pg_sleep(2)": "statement timeout",
    }
    for statement, error in refused.items():
        result = json.loads(orgs("sql", statement, "--timeout", "0.2", "--slugs", "ops-1", "ops-2", "--json",
                                 expect_exit=1))  # fmt: skip
        assert result["rows"] == [] and set(result["failed"]) == {"ops-1", "ops-2"}, statement
        assert all(error in message.lower() or error in message for message in result["failed"].values()), result
    assert agents_in(a.schema_name) == 2


def test_migrate_shows_a_plan_for_one_organization_and_fakes_a_migration_whose_objects_are_there(fleet):  # noqa: F811
    c = fleet["orgs"][2]
    execute(f"DELETE FROM \"{c.schema_name}\".django_migrations WHERE app = 'leads'")
    Organization.objects.filter(id=c.id).update(migration_state="older")
    leads = sorted(f"leads.{name}" for app, name in tenant_migrations() if app == "leads")
    plan = json.loads(orgs("migrate", "--slugs", "ops-2", "--plan", "--json"))
    assert plan["plan"] == {"ops-2": leads} and plan["selected"] == 1
    assert json.loads(orgs("check", "--json", expect_exit=1))["records_lost"] == ["ops-2"]  # nothing changed
    with pytest.raises(CommandError, match="--slugs"):
        orgs("migrate", "--fake", leads[-1])
    with pytest.raises(CommandError, match="no tenant migration"):
        orgs("migrate", "--fake", "leads.9999_nope", "--slugs", "ops-2")
    faked = json.loads(orgs("migrate", "--fake", leads[-1], "--slugs", "ops-2", "--json"))
    assert faked == {"faked": {"ops-2": leads}}
    assert "no drift" in orgs("check")
    assert Organization.objects.get(id=c.id).migration_state == Organization.objects.get(slug="ops-0").migration_state


@pytest.mark.parametrize("scope", [["--slug", "ops-0"], []])
def test_a_fix_made_in_sql_shows_at_once_after_cache_flush(fleet, scope):  # noqa: F811
    member = fleet["member"]
    assert member.api.get("/api/v1/organizations/ops-0/agents").status_code == 200  # cached now
    execute(f"DELETE FROM public_app_membership WHERE user_id = {member.user.id}")  # a fix made by hand
    assert member.api.get("/api/v1/organizations/ops-0/agents").status_code == 200  # the cache still says member
    orgs("cache-flush", *scope)
    assert member.api.get("/api/v1/organizations/ops-0/agents").status_code == 404


def test_import_and_export_fail_with_a_clear_message_and_an_old_archive_is_migrated(fleet, tmp_path):  # noqa: F811
    owner = fleet["owner"]
    created = owner.api.post("/api/v1/organizations/ops-0/invitations", {"email": "new@example.com", "role": "member"})
    assert created.status_code == 201, created.content
    archive_file = tmp_path / "ops-0.tar.gz"
    orgs("export", "ops-0", str(archive_file))
    # into the same database: the pending invitation's link exists here already, so the copy goes without it
    result = json.loads(orgs("import", str(archive_file), "--slug", "ops-copy", "--json"))
    assert result["skipped_invitations"] == 1 and result["migrated"] is False
    refusals = {
        ("import", str(archive_file)): "already taken",  # the archived slug is ops-0's
        ("import", str(archive_file), "--slug", "Bad Slug!"): "slug",
        ("import", str(tmp_path / "missing.tar.gz")): "no such file",
        ("import", str(Path(__file__))): "not an archive",
    }
    for args, message in refusals.items():
        with pytest.raises(CommandError, match=message):
            orgs(*args)
    b = fleet["orgs"][1]
    execute(f'DROP TABLE "{b.schema_name}".phone_numbers_phonenumber')
    with pytest.raises(CommandError, match="lacks tables: phone_numbers_phonenumber"):
        orgs("export", "ops-1", str(tmp_path / "ops-1.tar.gz"))
    assert json.loads(orgs("export", "ops-1", str(tmp_path / "ops-1.tar.gz"), "--incomplete", "--json"))["schema"]
    execute(f'DROP SCHEMA "{b.schema_name}" CASCADE')
    with pytest.raises(CommandError, match="does not exist"):
        orgs("snapshot", "ops-1", str(tmp_path / "ops-1b.tar.gz"))


def test_an_archive_from_an_older_release_is_migrated_before_it_goes_active(fleet, tmp_path):  # noqa: F811
    a = fleet["orgs"][0]
    execute(f"DROP TABLE \"{a.schema_name}\".integrations_integration")  # as before the integrations app existed
    execute(f"DELETE FROM \"{a.schema_name}\".django_migrations WHERE app = 'integrations'")
    Organization.objects.filter(id=a.id).update(migration_state="older")
    archive_file = tmp_path / "old.tar.gz"
    orgs("export", "ops-0", str(archive_file), "--incomplete")
    result = json.loads(orgs("import", str(archive_file), "--slug", "ops-old", "--json"))
    assert result["migrated"] is True
    copy = Organization.objects.get(slug="ops-old")
    assert copy.status == OrganizationStatus.ACTIVE
    report = json.loads(orgs("check", "--json", expect_exit=1))
    assert "ops-old" not in json.dumps(report)  # at head, with every table


def test_maintenance_makes_one_organization_read_only_and_a_restore_holds_it(fleet, tmp_path, monkeypatch):  # noqa: F811
    owner = fleet["owner"].api
    orgs("maintenance", "ops-0", "on", "--minutes", "5", "--reason", "incident 42")
    assert owner.get("/api/v1/organizations/ops-0/agents").status_code == 200  # reads go on
    refused = owner.post("/api/v1/organizations/ops-0/agents", {"name": "During maintenance"})
    assert refused.status_code == 503 and 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["code"] == "service_unavailable" and "incident 42" in refused.json()["message"]
    assert owner.post("/api/v1/organizations/ops-1/agents", {"name": "Elsewhere"}).status_code == 201  # others write
    orgs("maintenance", "ops-0", "off")
    assert owner.post("/api/v1/organizations/ops-0/agents", {"name": "After"}).status_code == 201
    snapshot = tmp_path / "s.tar.gz"
    orgs("snapshot", "ops-0", str(snapshot))
    seen = []

    def during_swap(*args, **kwargs):  # a write arriving while the restore runs
        seen.append(owner.post("/api/v1/organizations/ops-0/agents", {"name": "Mid-restore"}).status_code)
        return original(*args, **kwargs)

    from public_app.services.fleet import restore

    original = restore.restore_swap
    monkeypatch.setattr(restore, "restore_swap", during_swap)  # a client's write at that moment, not a fake
    orgs("restore", "ops-0", "--from", str(snapshot))
    assert seen == [503]
    assert Organization.objects.get(slug="ops-0").maintenance_until is None  # and writable again after
    assert owner.post("/api/v1/organizations/ops-0/agents", {"name": "After restore"}).status_code == 201


def test_purge_shows_what_it_drops_and_exports_it_first(fleet, settings, tmp_path):  # noqa: F811
    settings.SNAPSHOT_DIR = tmp_path
    planned = json.loads(orgs("purge", "ops-0", "--dry-run", "--json"))
    assert (planned["purged"], planned["rows"], planned["members"]) == (False, 2, 2)
    assert Organization.objects.filter(slug="ops-0").exists()
    result = json.loads(orgs("purge", "ops-0", "--yes", "--json"))
    backup = Path(result["backup"])
    assert result["purged"] and backup.parent == tmp_path / "purged" and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not Organization.objects.filter(slug="ops-0").exists()
    orgs("import", str(backup))  # the way back
    with tenant_context(Organization.objects.get(slug="ops-0")):
        assert Agent.objects.count() == 2


def test_discarding_a_staged_schema_asks_and_exports_it_first(fleet, settings, tmp_path, monkeypatch):  # noqa: F811
    settings.SNAPSHOT_DIR = tmp_path
    snapshot = tmp_path / "s.tar.gz"
    orgs("snapshot", "ops-0", str(snapshot))
    orgs("restore", "ops-0", "--from", str(snapshot))  # the replaced live schema is staged now
    staged = f"{Organization.objects.get(slug='ops-0').schema_name}__restore"
    with pytest.raises(CommandError, match="--yes"):
        call_command("orgs", "restore", "ops-0", "--discard", stdout=StringIO(), stderr=StringIO())
    assert staged in schemas()
    result = json.loads(orgs("restore", "ops-0", "--discard", "--yes", "--json"))
    assert staged not in schemas() and Path(result["backup"]).parent == tmp_path / "discarded"


def test_top_ranks_organizations_by_size_rows_and_jobs_waiting(fleet):  # noqa: F811
    a = fleet["orgs"][0]
    with tenant_context(a):
        Agent.objects.bulk_create([Agent(name=f"Bulk {i}", prompt="x" * 2000) for i in range(300)])
    execute(f'ANALYZE "{a.schema_name}".agents_agent')
    from public_app.models import OutboxMessage

    b = fleet["orgs"][1]
    waiting = OutboxMessage.objects.filter(organization_id=b.id).count()
    for _ in range(3):
        OutboxMessage.objects.create(message_id=uuid.uuid4(), actor_name="deliver_webhook", organization_id=b.id)
    by_size = json.loads(orgs("top", "--json"))
    assert by_size[0]["slug"] == "ops-0" and by_size[0]["rows"] >= 302
    assert json.loads(orgs("top", "--by", "rows", "--limit", "1", "--json"))[0]["slug"] == "ops-0"
    busiest = json.loads(orgs("top", "--by", "jobs_waiting", "--json"))[0]
    assert (busiest["slug"], busiest["jobs_waiting"]) == ("ops-1", waiting + 3)


def test_a_migrate_waiting_on_a_lock_says_it_is_still_working(fleet, settings, monkeypatch):  # noqa: F811
    from public_app.management.commands import orgs as orgs_command
    from public_app.pgtools import direct_connection
    from public_app.services.fleet import rollout
    from tests.public_app.services.fleet.test_rollout import back_before_webhooks_and_integrations

    settings.MIGRATION_LOCK_TIMEOUT_MS = 300
    monkeypatch.setattr(rollout, "LOCK_RETRY_PAUSES", (0.3, 0.3))
    monkeypatch.setattr(orgs_command, "PROGRESS_SILENCE", 0.2)
    held = fleet["orgs"][1]
    back_before_webhooks_and_integrations(held)
    with direct_connection() as holder:  # someone holds the organization's row (a long admin transaction)
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM public_app_organization WHERE id = %s FOR UPDATE", [held.id])
        out = orgs("migrate", "--slugs", "ops-1", expect_exit=1)
        holder.execute("ROLLBACK")
    assert "still working" in out and "ops-1 (" in out and "LockNotAvailable" in out
    assert "[1/1]" in orgs("migrate", "--slugs", "ops-1")  # once it is free, the same command goes through


def test_djangos_executor_path_waits_for_locks_a_bounded_time_too(fleet, settings, monkeypatch):  # noqa: F811
    import threading

    from public_app.pgtools import direct_connection
    from public_app.services.fleet import rollout
    from tests.public_app.services.fleet.test_rollout import terminate_backend

    settings.MIGRATION_LOCK_TIMEOUT_MS = 300
    monkeypatch.setattr(rollout, "LOCK_RETRY_PAUSES", (0.2,))
    held = fleet["orgs"][1]
    call_command("migrate_schemas", "agents", "0002_agent_uid", tenant=True, schema_name=held.schema_name,
                 interactive=False, verbosity=0)  # fmt: skip
    Organization.objects.filter(id=held.id).update(migration_state="older")
    with direct_connection() as holder:  # a long report reading agents: the unique constraint must wait for it
        holder.execute("BEGIN")
        holder.execute(f'SELECT count(*) FROM "{held.schema_name}".agents_agent').fetchone()
        watchdog = threading.Timer(30, terminate_backend, [holder.info.backend_pid])  # a hang fails, not hangs
        watchdog.start()
        result = json.loads(orgs("migrate", "--force", "--slugs", "ops-1", "--json", expect_exit=1))
        watchdog.cancel()
        holder.execute("ROLLBACK")
    assert "lock timeout" in result["failed"][held.schema_name]
    assert json.loads(orgs("migrate", "--force", "--slugs", "ops-1", "--json"))["failed"] == {}
    assert "no drift" in orgs("check")
