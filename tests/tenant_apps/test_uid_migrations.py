"""The tenant-id migrations (issue 16) on a schema holding rows from before them, run the way production runs them:
`orgs migrate` (the fleet machinery). These tests commit, so they drop their schemas afterwards."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from public_app.models import Organization
from public_app.tenancy import tenant_context
from tenant_apps.agents.models import Agent
from tenant_apps.audit.models import AuditEntry
from tenant_apps.campaigns.models import Campaign
from tenant_apps.leads.models import Lead
from tenant_apps.phone_numbers.models import PhoneNumber
from tests.conftest import Api, drop_tenant_schemas, make_org, make_persona

# The state every tenant schema was in before the ids: the migrations that add them are unapplied back to these.
BEFORE = [("leads", "0001_initial"), ("phone_numbers", "0001_initial"), ("campaigns", "0001_initial"),
          ("agents", "0001_initial"), ("audit", "0001_initial")]  # fmt: skip
PREFIXES = {Agent: "agt", Campaign: "cmp", Lead: "led", PhoneNumber: "pn", AuditEntry: "aud"}
MANY_LEADS = 2500  # more than one batch of the backfill (tenant_apps.migration_ops.BATCH)
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid_ms(uid: str) -> int:
    """The time part of an id: its first 10 characters after the prefix (50 bits, the top 2 always 0)."""
    value = 0
    for char in uid.split("_", 1)[1][:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value


def orgs(*args: str) -> str:
    out = StringIO()
    call_command("orgs", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def old_schema(transactional_db, tenant_template):
    """An organization whose schema is at the state before the ids, with rows in every table that gets one."""
    owner = make_persona("old@example.com", "Old")
    organization = make_org(owner.user, "old-org")
    for app, migration in BEFORE:
        call_command("migrate_schemas", app, migration, tenant=True, schema_name=organization.schema_name,
                     interactive=False, verbosity=0)  # fmt: skip
    connection.set_schema_to_public()
    Organization.objects.filter(id=organization.id).update(migration_state="before-tenant-ids")
    schema = f'"{organization.schema_name}"'
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = %s "
                       "AND column_name = 'uid' ORDER BY 1", [organization.schema_name])  # fmt: skip
        # really the old state: only the webhook tables had ids then
        assert cursor.fetchall() == [("webhooks_webhookdelivery",), ("webhooks_webhookendpoint",)]
        # Two agents made in the same millisecond, one later (inserted first, so primary key order is not time order).
        cursor.execute(f"""
            INSERT INTO {schema}.agents_agent (created_at, updated_at, name, status, language, voice, prompt)
            VALUES (%(later)s, %(later)s, 'later', 'draft', 'en', '', ''),
                   (%(t0)s, %(t0)s, 'first', 'active', 'en', '', ''),
                   (%(t0)s, %(t0)s, 'twin', 'active', 'en', '', '')""",
            {"t0": T0, "later": T0 + timedelta(days=30)})  # fmt: skip
        cursor.execute(f"""
            INSERT INTO {schema}.campaigns_campaign (created_at, updated_at, name, status, agent_id)
            SELECT %(t)s, %(t)s, 'spring', 'running', id FROM {schema}.agents_agent WHERE name = 'first'""",
            {"t": T0 + timedelta(hours=1)})  # fmt: skip
        cursor.execute(f"""
            INSERT INTO {schema}.leads_lead (created_at, updated_at, first_name, last_name, email, phone, status,
                                             campaign_id, source, external_id)
            SELECT %(t)s + n * interval '1 second', now(), 'L', n::text, 'l' || n || '@example.com', '', 'new',
                   (SELECT id FROM {schema}.campaigns_campaign), 'import', ''
            FROM generate_series(1, %(n)s) AS n""", {"t": T0, "n": MANY_LEADS})  # fmt: skip
        cursor.execute(f"""
            INSERT INTO {schema}.phone_numbers_phonenumber (created_at, updated_at, e164, label, agent_id)
            SELECT %(t)s, %(t)s, '+14155550100', 'main', id FROM {schema}.agents_agent WHERE name = 'twin'""",
            {"t": T0})  # fmt: skip
        cursor.execute(f"""
            INSERT INTO {schema}.audit_auditentry (created_at, actor_type, actor_id, actor_label, action, target_type,
                                                   target_id, target_label, data)
            VALUES (%(t)s, 'user', %(actor)s, 'old@example.com', 'agent.deleted', 'agent', '7', 'gone', '{{}}')""",
            {"t": T0, "actor": owner.user.uid})  # fmt: skip
    yield {"organization": organization, "owner": owner}
    connection.set_schema_to_public()
    drop_tenant_schemas()


def test_orgs_migrate_gives_every_existing_row_an_id_and_keeps_the_rows(old_schema):
    organization = old_schema["organization"]
    with tenant_context(organization):
        before = {model: list(model.objects.order_by("id").values("id", "created_at")) for model in PREFIXES}
    assert len(before[Lead]) == MANY_LEADS
    result = json.loads(orgs("migrate", "--json"))
    assert (result["migrated"], result["failed"]) == (1, {})
    with tenant_context(organization):
        for model, prefix in PREFIXES.items():
            rows = list(model.objects.order_by("id").values("id", "created_at", "uid"))
            assert [{"id": r["id"], "created_at": r["created_at"]} for r in rows] == before[model]
            uids = [r["uid"] for r in rows]
            assert all(u.startswith(f"{prefix}_") for u in uids)
            assert all(len(u) == len(prefix) + 27 and set(u[len(prefix) + 1 :]) <= set(_ALPHABET) for u in uids)
            assert len(set(uids)) == len(uids)
            # the time part is the row's created_at, so ids sort the way the rows were made
            assert [ulid_ms(r["uid"]) for r in rows] == [int(r["created_at"].timestamp() * 1000) for r in rows]
        leads = list(Lead.objects.order_by("created_at").values_list("uid", flat=True))
        assert leads == sorted(leads)
        agents = dict(Agent.objects.values_list("name", "uid"))
        assert agents["first"] < agents["later"] and agents["twin"] < agents["later"]
    # the schema is now what a new organization gets from the template, and the API shows the ids
    assert "no drift" in orgs("check")
    api = Api(old_schema["owner"].token)
    base = "/api/v1/organizations/old-org"
    (campaign,) = api.get(f"{base}/campaigns").json()["items"]
    assert campaign["agent_id"] == agents["first"]
    assert api.get(f"{base}/campaigns/{campaign['id']}").json() == campaign
    (number,) = api.get(f"{base}/phone-numbers?agent_id={agents['twin']}").json()["items"]
    assert number["e164"] == "+14155550100"
    page = api.get(f"{base}/leads?campaign_id={campaign['id']}&limit=200").json()
    assert len(page["items"]) == 200 and page["next_cursor"]
    assert [lead["id"] for lead in page["items"]] == sorted((lead["id"] for lead in page["items"]), reverse=True)
    (entry,) = api.get(f"{base}/audit-log").json()["items"]
    assert entry["id"].startswith("aud_") and entry["target"]["id"] == "7"  # historical entries are kept as written
    created = api.post(f"{base}/agents", {"name": "new"}).json()
    assert created["id"].startswith("agt_") and created["id"] > agents["later"]


def test_the_id_migrations_can_be_unapplied_and_applied_again(old_schema):
    """A rollback of a release: unapplying drops the column, applying again fills it again."""
    organization = old_schema["organization"]
    orgs("migrate")
    for app, migration in BEFORE:
        call_command("migrate_schemas", app, migration, tenant=True, schema_name=organization.schema_name,
                     interactive=False, verbosity=0)  # fmt: skip
    connection.set_schema_to_public()
    Organization.objects.filter(id=organization.id).update(migration_state="before-tenant-ids")
    assert json.loads(orgs("migrate", "--json"))["migrated"] == 1
    with tenant_context(organization):
        assert Agent.objects.filter(uid__startswith="agt_").count() == 3
        assert Lead.objects.filter(uid__startswith="led_").count() == MANY_LEADS
