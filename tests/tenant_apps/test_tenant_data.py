"""Campaigns, leads, phone numbers: CRUD, validation, references within the schema, pagination, isolation."""

import pytest

from public_app.tenancy import tenant_context
from tenant_apps.leads.models import Lead

ORG = "/api/v1/organizations/acme"


def count_leads(organization) -> int:
    with tenant_context(organization):
        return Lead.objects.count()


@pytest.fixture
def agent_id(acme, alice):
    return alice.api.post(f"{ORG}/agents", {"name": "Ann"}).json()["id"]


@pytest.fixture
def campaign_id(acme, alice, agent_id):
    r = alice.api.post(f"{ORG}/campaigns", {"name": "Spring", "agent_id": agent_id})
    assert r.status_code == 201, r.content
    return r.json()["id"]


@pytest.mark.django_db
def test_campaign_crud_and_filters(acme, alice, agent_id):
    r = alice.api.post(
        f"{ORG}/campaigns",
        {"name": "Spring", "status": "scheduled", "agent_id": agent_id, "starts_at": "2027-03-01T09:00:00Z",
         "ends_at": "2027-03-31T17:00:00Z"},
    )  # fmt: skip
    assert r.status_code == 201
    campaign = r.json()
    assert {k: campaign[k] for k in ("name", "status", "agent_id")} == {
        "name": "Spring", "status": "scheduled", "agent_id": agent_id
    }  # fmt: skip
    alice.api.post(f"{ORG}/campaigns", {"name": "Other"})
    assert [c["name"] for c in alice.api.get(f"{ORG}/campaigns?status=scheduled").json()["items"]] == ["Spring"]
    assert [c["name"] for c in alice.api.get(f"{ORG}/campaigns?agent_id={agent_id}").json()["items"]] == ["Spring"]
    patched = alice.api.patch(f"{ORG}/campaigns/{campaign['id']}", {"status": "running", "agent_id": None})
    assert patched.json()["status"] == "running" and patched.json()["agent_id"] is None
    assert alice.api.delete(f"{ORG}/campaigns/{campaign['id']}").status_code == 204
    assert alice.api.get(f"{ORG}/campaigns/{campaign['id']}").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "agent_id": "999"}, "agent_id"),
        ({"name": "X", "agent_id": "abc"}, "agent_id"),
        ({"name": "X", "status": "exploded"}, "status"),
        ({"name": "X", "starts_at": "2027-03-02T00:00:00Z", "ends_at": "2027-03-01T00:00:00Z"}, "ends_at"),
        ({"name": "X", "starts_at": "2027-03-02T00:00:00"}, "starts_at"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_campaigns_are_422(acme, alice, payload, field):
    r = alice.api.post(f"{ORG}/campaigns", payload)
    assert r.status_code == 422
    assert field in {d["field"] for d in r.json()["details"]}
    assert alice.api.get(f"{ORG}/campaigns").json()["items"] == []


@pytest.mark.django_db
def test_lead_crud(acme, alice, campaign_id):
    r = alice.api.post(
        f"{ORG}/leads",
        {"first_name": "Ada", "last_name": "L", "email": "ADA@Example.com", "phone": "+14155550100",
         "campaign_id": campaign_id},
    )  # fmt: skip
    assert r.status_code == 201
    lead = r.json()
    assert (lead["email"], lead["source"], lead["status"], lead["campaign_id"]) == (
        "ada@example.com", "manual", "new", campaign_id
    )  # fmt: skip
    patched = alice.api.patch(f"{ORG}/leads/{lead['id']}", {"status": "qualified", "campaign_id": None})
    assert (patched.json()["status"], patched.json()["campaign_id"]) == ("qualified", None)
    assert alice.api.delete(f"{ORG}/leads/{lead['id']}").status_code == 204
    assert count_leads(acme) == 0


@pytest.mark.django_db
def test_lead_created_by_an_api_key_has_source_api(acme, alice):
    key = alice.api.post(f"{ORG}/api-keys", {"name": "k", "role": "member"}).json()["key"]
    from tests.conftest import Api

    assert Api(key).post(f"{ORG}/leads", {"email": "k@example.com"}).json()["source"] == "api"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "4155550100"}, "phone"),
        ({"phone": "+0155550100"}, "phone"),
        ({"phone": "+1 415 555 0100"}, "phone"),
        ({"email": "a@example.com", "status": "won"}, "status"),
        ({"email": "a@example.com", "campaign_id": "424242"}, "campaign_id"),
        ({}, "email"),
    ],
)
def test_invalid_leads_are_422(acme, alice, payload, field):
    r = alice.api.post(f"{ORG}/leads", payload)
    assert r.status_code == 422
    assert field in {d["field"] for d in r.json()["details"]}
    assert count_leads(acme) == 0


@pytest.mark.django_db
def test_a_campaign_of_another_organization_cannot_be_referenced(acme, globex, alice, eve):
    foreign = eve.api.post("/api/v1/organizations/globex/campaigns", {"name": "G"}).json()["id"]
    alice.api.post(f"{ORG}/campaigns", {"name": "A"})
    r = alice.api.post(f"{ORG}/leads", {"email": "x@example.com", "campaign_id": foreign})
    assert r.status_code == 422
    assert alice.api.get(f"{ORG}/campaigns/{foreign}").status_code == 404


@pytest.mark.django_db
def test_phone_number_crud_and_uniqueness(acme, globex, alice, eve, agent_id):
    r = alice.api.post(f"{ORG}/phone-numbers", {"e164": "+14155550100", "label": "Main", "agent_id": agent_id})
    assert r.status_code == 201
    number = r.json()
    assert (number["e164"], number["agent_id"]) == ("+14155550100", agent_id)
    duplicate = alice.api.post(f"{ORG}/phone-numbers", {"e164": "+14155550100"})
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "phone_number_taken"
    # another organization may hold the same number in its own schema
    assert eve.api.post("/api/v1/organizations/globex/phone-numbers", {"e164": "+14155550100"}).status_code == 201
    assert alice.api.patch(f"{ORG}/phone-numbers/{number['id']}", {"agent_id": None}).json()["agent_id"] is None
    assert alice.api.post(f"{ORG}/phone-numbers", {"e164": "555-0100"}).status_code == 422
    assert alice.api.delete(f"{ORG}/phone-numbers/{number['id']}").status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["campaigns", "leads", "phone-numbers"])
def test_cross_organization_id_probing_is_404(acme, globex, alice, eve, resource):
    bodies = {"campaigns": {"name": "G"}, "leads": {"email": "g@example.com"}, "phone-numbers": {"e164": "+4930123456"}}
    for _ in range(3):  # globex gets 3 rows (once numbered 1..3 in every schema); acme has none
        foreign_id = eve.api.post(f"/api/v1/organizations/globex/{resource}", bodies[resource]).json()["id"]
        bodies["phone-numbers"]["e164"] += "1"
    for probe in ("1", "2", foreign_id):
        assert alice.api.get(f"{ORG}/{resource}/{probe}").status_code == 404
        assert alice.api.delete(f"{ORG}/{resource}/{probe}").status_code == 404
    assert eve.api.get(f"/api/v1/organizations/globex/{resource}/{foreign_id}").status_code == 200
    assert alice.api.get(f"{ORG}/{resource}").json()["items"] == []
    assert alice.api.get(f"/api/v1/organizations/globex/{resource}").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["campaigns", "leads", "phone-numbers"])
@pytest.mark.parametrize(("persona", "status"), [("member", 200), ("billing", 403), ("outsider", 404)])
def test_tenant_data_roles(acme, globex, personas, resource, persona, status):
    assert personas[persona].api.get(f"{ORG}/{resource}").status_code == status


@pytest.mark.django_db
def test_paging_over_1000_leads_returns_each_exactly_once_while_rows_are_inserted(acme, alice):
    with tenant_context(acme):
        Lead.objects.bulk_create([Lead(email=f"l{i}@example.com") for i in range(1000)])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = f"{ORG}/leads?limit=137" + (f"&cursor={cursor}" if cursor else "")
        body = alice.api.get(url).json()
        seen += [lead["email"] for lead in body["items"]]
        pages += 1
        alice.api.post(f"{ORG}/leads", {"email": f"new{pages}@example.com"})  # inserted between pages
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 1000
    assert pages == 8


@pytest.mark.django_db
def test_created_after_filter(acme, alice):
    old = alice.api.post(f"{ORG}/leads", {"email": "a@example.com"}).json()
    alice.api.post(f"{ORG}/leads", {"email": "b@example.com"})
    with tenant_context(acme):
        Lead.objects.filter(uid=old["id"]).update(created_at="2020-01-01T00:00:00Z")
    items = alice.api.get(f"{ORG}/leads?created_after=2021-01-01T00:00:00%2B00:00").json()["items"]
    assert [lead["email"] for lead in items] == ["b@example.com"]
    assert alice.api.get(f"{ORG}/leads?created_after=yesterday").status_code == 422


@pytest.mark.django_db
def test_json_import_inserts_every_row(acme, alice, campaign_id):
    rows = [{"email": f"i{i}@example.com", "campaign_id": campaign_id} for i in range(2500)]
    r = alice.api.post(f"{ORG}/leads/import", {"leads": rows})
    assert r.status_code == 201
    assert r.json() == {"imported": 2500}
    assert alice.api.get(f"{ORG}/leads?source=import&limit=1").json()["items"][0]["source"] == "import"
    assert count_leads(acme) == 2500


@pytest.mark.django_db
def test_csv_import(acme, alice, campaign_id):
    csv = "first_name,last_name,email,phone,status,campaign_id\n" + "".join(
        f"F{i},L{i},c{i}@example.com,+1415555{i:04d},new,{campaign_id}\n" for i in range(300)
    )
    r = alice.api.post(f"{ORG}/leads/import", raw=csv.encode(), content_type="text/csv")
    assert r.status_code == 201
    assert r.json() == {"imported": 300}


@pytest.mark.django_db
def test_import_with_a_bad_row_inserts_nothing_and_lists_the_rows(acme, alice):
    rows = [{"email": f"ok{i}@example.com"} for i in range(10)]
    rows[3] = {"email": "broken"}
    rows[7] = {"phone": "12"}
    rows[8] = {"email": "x@example.com", "campaign_id": "999"}
    r = alice.api.post(f"{ORG}/leads/import", rows)
    assert r.status_code == 422
    assert sorted((d["row"], d["field"]) for d in r.json()["details"]) == [
        (4, "email"), (8, "phone"), (9, "campaign_id")
    ]  # fmt: skip
    assert count_leads(acme) == 0


@pytest.mark.django_db
def test_import_limits(acme, alice, settings):
    settings.LEADS_IMPORT_MAX_ROWS = 5
    assert alice.api.post(f"{ORG}/leads/import", [{"email": f"{i}@example.com"} for i in range(6)]).status_code == 422
    assert alice.api.post(f"{ORG}/leads/import", []).status_code == 422
    bad_csv = alice.api.post(f"{ORG}/leads/import", raw=b"name,mail\nx,y\n", content_type="text/csv")
    assert bad_csv.status_code == 422
    assert alice.api.post(f"{ORG}/leads/import", raw=b"{nope").status_code == 400
    assert count_leads(acme) == 0


@pytest.mark.django_db
def test_import_body_may_be_up_to_10_mib_but_not_more(acme, alice):
    padding = "x" * 150
    rows = [
        {"email": f"{i}@example.com", "first_name": padding[:100], "last_name": padding[:100]} for i in range(10000)
    ]
    import json

    body = json.dumps(rows).encode()
    assert 1024 * 1024 < len(body) < 10 * 1024 * 1024
    r = alice.api.post(f"{ORG}/leads/import", raw=body)
    assert r.status_code == 201
    assert r.json() == {"imported": 10000}
    too_big = alice.api.post(f"{ORG}/leads/import", raw=b"[" + b" " * (10 * 1024 * 1024) + b"]")
    assert too_big.status_code == 413


@pytest.mark.django_db
@pytest.mark.parametrize(
    "moment", ["0839-01-20T21:00:22+17:21", "0458-01-04T08:21:05.246-21:58", "0001-01-01T00:00:00+05:00"]
)
def test_extreme_offsets_and_dates_never_500(acme, alice, moment):
    from urllib.parse import quote

    created = alice.api.post(f"{ORG}/campaigns", {"name": "Edge", "starts_at": moment})
    assert created.status_code in (201, 422)
    listed = alice.api.get(f"{ORG}/campaigns?created_after={quote(moment)}")
    assert listed.status_code in (200, 422)
    if created.status_code == 201:
        assert created.json()["starts_at"].endswith("Z")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "parameter"),
    [("campaigns?agent_id=99999999999999999999", "agent_id"), ("leads?campaign_id=99999999999999999999", "campaign_id"),
     ("phone-numbers?agent_id=1", "agent_id"), ("leads?campaign_id=abc", "campaign_id"),
     ("leads?campaign_id=cmp_" + "0" * 27, "campaign_id")],
)  # fmt: skip
def test_reference_filters_with_ids_that_cannot_be_one_are_422_naming_the_parameter(acme, alice, query, parameter):
    """Before (integer ids), these matched nothing; an id's shape now says its kind, so they are refused."""
    r = alice.api.get(f"{ORG}/{query}")
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == [parameter]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "body", "change"),
    [("agents", {"name": "A"}, {"name": "B"}), ("campaigns", {"name": "C"}, {"name": "D"}),
     ("leads", {"first_name": "L", "email": "l@example.com"}, {"first_name": "M"}),
     ("phone-numbers", {"e164": "+14155550100", "label": "x"}, {"label": "y"})],
)  # fmt: skip
def test_an_update_racing_a_delete_does_not_bring_the_row_back(acme, alice, kind, body, change, monkeypatch):
    """The edit loaded the row, then another request deleted it before the edit was written."""
    from tenant_apps import common

    created = alice.api.post(f"{ORG}/{kind}", body).json()
    real_get = common.get_or_404

    def get_then_deleted_by_someone_else(queryset, object_id, label):
        found = real_get(queryset, object_id, label)
        queryset.model.objects.filter(pk=found.pk).delete()
        return found

    import importlib

    for module in ("agents.selectors", "campaigns.selectors", "leads.selectors", "phone_numbers.selectors"):
        try:
            loaded = importlib.import_module(f"tenant_apps.{module}")
        except ImportError:
            continue
        if hasattr(loaded, "get_or_404"):
            monkeypatch.setattr(loaded, "get_or_404", get_then_deleted_by_someone_else)
    r = alice.api.patch(f"{ORG}/{kind}/{created['id']}", change)
    assert r.status_code == 404, r.content
    monkeypatch.undo()
    assert alice.api.get(f"{ORG}/{kind}/{created['id']}").status_code == 404
