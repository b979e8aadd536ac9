"""`orgs snapshot` and `orgs restore` against real schemas: one organization back to a point in time, side by side
with its live schema, swapped atomically or discarded, the others untouched."""

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.db import connection

from public_app.models import Organization
from public_app.pgtools import direct_connection
from public_app.services.fleet import archive
from public_app.services.fleet.migrations import migrate_fleet
from public_app.services.fleet.rollout import applied_in
from public_app.services.provisioning import migration_state, tenant_migrations
from public_app.tenancy import tenant_context
from tenant_apps.agents.models import Agent
from tests.public_app.services.fleet.test_ops import execute, fleet, orgs  # noqa: F401 - the fixture
from tests.public_app.services.fleet.test_rollout import back_before_webhooks_and_integrations, catalog


def agent_names(owner, slug: str) -> list[str]:
    response = owner.api.get(f"/api/v1/organizations/{slug}/agents?limit=200")
    assert response.status_code == 200, response.content
    return sorted(agent["name"] for agent in response.json()["items"])


def snapshot(slug: str, path: Path) -> dict:
    return json.loads(orgs("snapshot", slug, str(path), "--json"))


def schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def test_restore_puts_one_organization_back_and_a_second_swap_undoes_it(fleet, tmp_path):  # noqa: F811
    owner, (a, b, _) = fleet["owner"], fleet["orgs"]
    with tenant_context(b):
        Agent.objects.create(name="Other org's agent")
    taken = snapshot("ops-0", tmp_path / "ops-0.tar.gz")
    assert taken["rows"]["agents_agent"] == 2 and taken["members"] == 2
    # after the snapshot: one agent added, one renamed, one deleted
    with tenant_context(a):
        Agent.objects.create(name="Added later")
        Agent.objects.filter(name="Second agent").update(name="Renamed later")
        Agent.objects.filter(name="Exported agent").delete()
    assert agent_names(owner, "ops-0") == ["Added later", "Renamed later"]

    out = orgs("restore", "ops-0", "--from", str(tmp_path / "ops-0.tar.gz"))
    assert "rows match the snapshot" in out and "restored ops-0" in out
    assert agent_names(owner, "ops-0") == ["Exported agent", "Second agent"]  # through the API, as its role
    assert agent_names(owner, "ops-1") == ["Other org's agent"]  # the other organization untouched
    staged = a.schema_name + "__restore"
    assert schema_exists(staged)  # the replaced schema, kept to undo
    assert catalog(a.schema_name) == catalog(b.schema_name)  # same structure and grants as any schema at head
    created = owner.api.post("/api/v1/organizations/ops-0/agents", {"name": "After the restore"})
    assert created.status_code == 201, created.content  # its sequences go on past the restored rows
    check = orgs("check")
    assert "no drift" in check and staged in check  # a staged schema is not an orphan, and is listed

    orgs("restore", "ops-0", "--swap")  # undo
    assert agent_names(owner, "ops-0") == ["Added later", "Renamed later"]
    orgs("restore", "ops-0", "--swap")  # and again
    assert agent_names(owner, "ops-0") == ["After the restore", "Exported agent", "Second agent"]
    orgs("restore", "ops-0", "--discard", "--yes")
    assert not schema_exists(staged)
    assert "no drift" in orgs("check")
    with pytest.raises(CommandError, match="no restore of ops-0 is staged"):
        orgs("restore", "ops-0", "--swap")


def test_side_by_side_stages_and_compares_and_discard_leaves_the_live_schema(fleet, tmp_path):  # noqa: F811
    owner, (a, _, _) = fleet["owner"], fleet["orgs"]
    path = tmp_path / "snap.tar.gz"
    snapshot("ops-0", path)
    with tenant_context(a):
        Agent.objects.create(name="Added later")
    result = json.loads(orgs("restore", "ops-0", "--from", str(path), "--side-by-side", "--json"))
    assert result["matches"] is True
    assert result["rows"]["agents_agent"] == {"snapshot": 2, "staged": 2, "live": 3}
    assert agent_names(owner, "ops-0") == ["Added later", "Exported agent", "Second agent"]  # live until a swap
    with pytest.raises(CommandError, match="already staged"):
        orgs("restore", "ops-0", "--from", str(path))
    orgs("restore", "ops-0", "--discard", "--yes")
    assert not schema_exists(a.schema_name + "__restore")
    assert agent_names(owner, "ops-0") == ["Added later", "Exported agent", "Second agent"]


def test_a_snapshot_is_of_one_point_in_time(fleet, tmp_path, monkeypatch):  # noqa: F811
    """A row committed while the snapshot is being written (after its transaction began, before pg_dump ran) is in
    none of its parts: not in the dump, not in the counts."""
    a = fleet["orgs"][0]
    real_run = subprocess.run

    def run_after_a_commit(*args, **kwargs):
        with direct_connection() as other:
            other.execute(f'INSERT INTO "{a.schema_name}".agents_agent (uid, name, status, language, prompt, voice, '
                          "created_at, updated_at) VALUES ('agt_concurrent', 'Concurrent', 'draft', 'en-US', '', '', "
                          "now(), now())")  # fmt: skip
        return real_run(*args, **kwargs)

    monkeypatch.setattr(archive.subprocess, "run", run_after_a_commit)
    taken = snapshot("ops-0", tmp_path / "snap.tar.gz")
    monkeypatch.setattr(archive.subprocess, "run", real_run)
    assert taken["rows"]["agents_agent"] == 2
    with tarfile.open(tmp_path / "snap.tar.gz") as tar:
        dump = tar.extractfile("schema.sql").read().decode()
    assert "Concurrent" not in dump and "Exported agent" in dump
    result = json.loads(orgs("restore", "ops-0", "--from", str(tmp_path / "snap.tar.gz"), "--side-by-side", "--json"))
    assert result["rows"]["agents_agent"] == {"snapshot": 2, "staged": 2, "live": 3} and result["matches"]


def test_a_restore_refuses_another_organizations_snapshot_and_rows_that_differ(fleet, tmp_path):  # noqa: F811
    owner, (a, _, _) = fleet["owner"], fleet["orgs"]
    snapshot("ops-1", tmp_path / "other.tar.gz")
    with pytest.raises(CommandError, match="`orgs import` makes a new organization"):
        orgs("restore", "ops-0", "--from", str(tmp_path / "other.tar.gz"))
    assert not schema_exists(a.schema_name + "__restore")
    # an archive whose counts do not match its dump: staged, compared, refused, dropped
    snapshot("ops-0", tmp_path / "snap.tar.gz")
    with tarfile.open(tmp_path / "snap.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    manifest["rows"]["agents_agent"] = 5
    (tmp_path / "x" / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(tmp_path / "tampered.tar.gz", "w:gz") as tar:
        for name in ("manifest.json", "public.json", "schema.sql"):
            tar.add(tmp_path / "x" / name, arcname=name)
    with pytest.raises(CommandError, match="differ from the snapshot"):
        orgs("restore", "ops-0", "--from", str(tmp_path / "tampered.tar.gz"))
    assert not schema_exists(a.schema_name + "__restore")
    assert agent_names(owner, "ops-0") == ["Exported agent", "Second agent"]


def test_members_are_not_restored_and_the_difference_is_reported(fleet, tmp_path):  # noqa: F811
    owner, member = fleet["owner"], fleet["member"]
    snapshot("ops-0", tmp_path / "snap.tar.gz")
    removed = owner.api.get("/api/v1/organizations/ops-0/members").json()["items"]
    target = next(m for m in removed if m["user"]["email"] == member.user.email)
    assert owner.api.delete(f"/api/v1/organizations/ops-0/members/{target['user']['id']}").status_code == 204
    out = orgs("restore", "ops-0", "--from", str(tmp_path / "snap.tar.gz"))
    assert f"members in the snapshot, not now (not restored): {member.user.email}" in out
    assert member.api.get("/api/v1/organizations/ops-0/agents").status_code == 404  # no access given back


def test_a_restore_undoes_a_rollout_for_one_organization(fleet, tmp_path):  # noqa: F811
    owner, (a, b, _) = fleet["owner"], fleet["orgs"]
    for organization in (a, b):
        back_before_webhooks_and_integrations(organization)
    before = applied_in(a.schema_name)
    snapshot("ops-0", tmp_path / "before-rollout.tar.gz")
    assert migrate_fleet(jobs=1)["failed"] == {}
    assert applied_in(a.schema_name) == set(tenant_migrations())
    orgs("restore", "ops-0", "--from", str(tmp_path / "before-rollout.tar.gz"))
    assert applied_in(a.schema_name) == before
    a.refresh_from_db()
    assert a.migration_state != migration_state()  # recorded as behind: the next rollout brings it forward
    # behind the code: a request that needs what the rollout adds is told to come back, not a 500
    hooks = owner.api.get("/api/v1/organizations/ops-0/webhooks")
    assert hooks.status_code == 503 and hooks.json()["code"] == "service_unavailable", hooks.content
    assert int(hooks["Retry-After"]) > 0
    assert agent_names(owner, "ops-0") == ["Exported agent", "Second agent"]  # what it has still answers
    assert owner.api.get("/api/v1/organizations/ops-1/webhooks").status_code == 200
    result = migrate_fleet(jobs=1)
    assert (result["failed"], result["rendered"]) == ({}, 1)
    assert owner.api.get("/api/v1/organizations/ops-0/webhooks").status_code == 200
    assert Organization.objects.get(id=a.id).migration_state == migration_state()


def test_a_schema_recorded_as_current_that_lacks_a_table_is_still_a_500(fleet):  # noqa: F811
    """Drift is not a rollout in progress: it stays loud."""
    owner, (a, _, _) = fleet["owner"], fleet["orgs"]
    execute(f'DROP TABLE "{a.schema_name}".webhooks_webhookattempt, "{a.schema_name}".webhooks_webhookdelivery, '
            f'"{a.schema_name}".webhooks_webhookendpoint CASCADE')  # fmt: skip
    assert owner.api.get("/api/v1/organizations/ops-0/webhooks").status_code == 500


def test_snapshot_writes_to_snapshot_dir_by_default(fleet, tmp_path, settings):  # noqa: F811
    settings.SNAPSHOT_DIR = tmp_path / "snaps"
    out = orgs("snapshot", "ops-2")
    (written,) = (tmp_path / "snaps").iterdir()
    assert written.name.startswith("ops-2-") and str(written) in out
