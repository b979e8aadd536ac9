"""Tenant object ids (issue 16): prefixed, opaque, unique across organizations; looked up by kind.

A path id of the wrong kind or unknown is 404; a reference (`agent_id` in a body) of the wrong kind or unknown is a
422 naming the field; a filter (`?agent_id=`) of the wrong kind is a 422 naming the parameter, an unknown one of the
right kind matches nothing. An id never resolves under another organization's slug.
"""

import json
import re

import pytest

from public_app import errors
from public_app.models import Membership, Role
from public_app.tenancy import tenant_context
from tenant_apps.agents.models import Agent
from tenant_apps.audit.models import AuditEntry
from tenant_apps.campaigns.models import Campaign
from tenant_apps.leads.models import Lead
from tenant_apps.phone_numbers.models import PhoneNumber
from tenant_apps.webhooks.models import WebhookDelivery

ORG = "/api/v1/organizations/acme"
GLOBEX = "/api/v1/organizations/globex"
# Well-formed ids that no row has (the 26 characters are valid Crockford base32).
UNKNOWN = {kind: f"{kind}_01jbz0000000000000000000zz" for kind in ("agt", "cmp", "led", "pn", "whk")}
NOT_FOUND = {"agents": "Agent not found.", "campaigns": "Campaign not found.", "leads": "Lead not found.",
             "phone-numbers": "Phone number not found."}  # fmt: skip
CHANGES = {"agents": {"name": "x"}, "campaigns": {"name": "x"}, "leads": {"first_name": "x"},
           "phone-numbers": {"label": "x"}}  # fmt: skip
MODELS = {"agents": Agent, "campaigns": Campaign, "leads": Lead, "phone-numbers": PhoneNumber}


def uid_re(prefix: str) -> re.Pattern:
    return re.compile(rf"^{prefix}_[0-9a-hjkmnp-tv-z]{{26}}$")


def snapshot(organization) -> dict:
    """Every tenant-data row of the organization, as stored."""
    with tenant_context(organization):
        return {name: sorted(model.objects.values_list("uid", "updated_at")) for name, model in MODELS.items()}


@pytest.fixture
def world(acme, alice):
    """One of each tenant object in acme, created through the API, with their references set."""
    api = alice.api
    agent = api.post(f"{ORG}/agents", {"name": "Ann"}).json()
    campaign = api.post(f"{ORG}/campaigns", {"name": "Spring", "agent_id": agent["id"]}).json()
    lead = api.post(f"{ORG}/leads", {"email": "ada@example.com", "campaign_id": campaign["id"]}).json()
    number = api.post(f"{ORG}/phone-numbers", {"e164": "+14155550100", "agent_id": agent["id"]}).json()
    return {"agents": agent, "campaigns": campaign, "leads": lead, "phone-numbers": number}


@pytest.mark.django_db
def test_every_tenant_object_has_an_id_of_its_kind_and_references_are_ids(world, alice, settings):
    agent, campaign, lead, number = world["agents"], world["campaigns"], world["leads"], world["phone-numbers"]
    assert uid_re("agt").match(agent["id"])
    assert uid_re("cmp").match(campaign["id"]) and campaign["agent_id"] == agent["id"]
    assert uid_re("led").match(lead["id"]) and lead["campaign_id"] == campaign["id"]
    assert uid_re("pn").match(number["id"]) and number["agent_id"] == agent["id"]
    for resource, created in world.items():
        assert alice.api.get(f"{ORG}/{resource}/{created['id']}").json() == created
        assert alice.api.get(f"{ORG}/{resource}").json()["items"] == [created]
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    hook = alice.api.post(f"{ORG}/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["ping"]}).json()
    assert uid_re("whk").match(hook["id"])
    alice.api.post(f"{ORG}/webhooks/{hook['id']}/test")
    (delivery,) = alice.api.get(f"{ORG}/webhooks/{hook['id']}/deliveries").json()["items"]
    assert uid_re("whd").match(delivery["id"]) and uid_re("evt").match(delivery["event_id"])
    entries = alice.api.get(f"{ORG}/audit-log").json()["items"]
    assert entries and all(uid_re("aud").match(entry["id"]) for entry in entries)


@pytest.mark.django_db
def test_ids_are_unique_across_organizations(acme, globex, alice, eve):
    """Before: every organization had an agent "1"."""
    mine = {alice.api.post(f"{ORG}/agents", {"name": f"a{i}"}).json()["id"] for i in range(3)}
    theirs = {eve.api.post(f"{GLOBEX}/agents", {"name": f"g{i}"}).json()["id"] for i in range(3)}
    assert len(mine) == len(theirs) == 3 and not mine & theirs


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["agents", "campaigns", "leads", "phone-numbers"])
def test_a_path_id_of_another_kind_or_unknown_is_404_and_changes_nothing(world, acme, alice, resource):
    other_kinds = [created["id"] for name, created in world.items() if name != resource]
    unknown = UNKNOWN[world[resource]["id"].split("_")[0]]
    before = snapshot(acme)
    for probe in [*other_kinds, unknown, "1", "2"]:  # "1": the integer ids shown before
        for method, body in (("GET", None), ("PATCH", CHANGES[resource]), ("DELETE", None)):
            response = alice.api.request(method, f"{ORG}/{resource}/{probe}", body)
            assert response.status_code == 404, (method, probe, response.content)
            assert response.json() == {"code": "not_found", "message": NOT_FOUND[resource], "details": None}
    assert snapshot(acme) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "field", "body", "target"),
    [("campaigns", "agent_id", {"name": "C"}, "agents"),
     ("leads", "campaign_id", {"email": "l@example.com"}, "campaigns"),
     ("phone-numbers", "agent_id", {"e164": "+14155550199"}, "agents")],
)  # fmt: skip
def test_a_reference_of_another_kind_is_422_naming_the_field_and_changes_nothing(
    world, acme, alice, resource, field, body, target
):
    before = snapshot(acme)
    wrong_kinds = [created["id"] for name, created in world.items() if name != target]
    for wrong in wrong_kinds:
        for method, path in (("POST", f"{ORG}/{resource}"), ("PATCH", f"{ORG}/{resource}/{world[resource]['id']}")):
            response = alice.api.request(method, path, body | {field: wrong})
            assert response.status_code == 422, (method, wrong, response.content)
            assert response.json()["code"] == "validation_error"
            (detail,) = response.json()["details"]
            assert detail["field"] == field and detail["message"]
    assert snapshot(acme) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "field", "body"),
    [("campaigns", "agent_id", {"name": "C"}), ("leads", "campaign_id", {"email": "l@example.com"}),
     ("phone-numbers", "agent_id", {"e164": "+14155550199"})],
)  # fmt: skip
def test_an_unknown_reference_of_the_right_kind_is_422_naming_the_field(world, acme, alice, resource, field, body):
    before = snapshot(acme)
    unknown = UNKNOWN["agt" if field == "agent_id" else "cmp"]
    for method, path in (("POST", f"{ORG}/{resource}"), ("PATCH", f"{ORG}/{resource}/{world[resource]['id']}")):
        response = alice.api.request(method, path, body | {field: unknown})
        assert response.status_code == 422, response.content
        kind = "agent" if field == "agent_id" else "campaign"
        assert response.json() == {
            "code": "validation_error",
            "message": f"No {kind} with this id in this organization.",
            "details": [{"field": field, "message": f"No {kind} with this id in this organization."}],
        }
    assert snapshot(acme) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "parameter", "target"),
    [("campaigns", "agent_id", "agents"), ("leads", "campaign_id", "campaigns"),
     ("phone-numbers", "agent_id", "agents")],
)  # fmt: skip
def test_reference_filters_take_ids_of_their_kind(world, alice, resource, parameter, target):
    matching = alice.api.get(f"{ORG}/{resource}?{parameter}={world[target]['id']}").json()
    assert matching == {"items": [world[resource]], "next_cursor": None}
    unknown = UNKNOWN[world[target]["id"].split("_")[0]]
    assert alice.api.get(f"{ORG}/{resource}?{parameter}={unknown}").json() == {"items": [], "next_cursor": None}
    for wrong in [created["id"] for name, created in world.items() if name != target] + ["1", "abc"]:
        response = alice.api.get(f"{ORG}/{resource}?{parameter}={wrong}")
        assert response.status_code == 422, (wrong, response.content)
        assert response.json()["code"] == "validation_error"
        assert [detail["field"] for detail in response.json()["details"]] == [parameter]


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["agents", "campaigns", "leads", "phone-numbers"])
def test_an_id_never_resolves_under_another_organizations_slug(world, acme, globex, alice, eve, resource):
    """Alice belongs to both organizations: the 404 is the id not existing in globex, not the membership check."""
    Membership.objects.create(user=alice.user, organization=globex, role=Role.ADMIN)
    bodies = {"agents": {"name": "G"}, "campaigns": {"name": "G"}, "leads": {"email": "g@example.com"},
              "phone-numbers": {"e164": "+4930123456"}}  # fmt: skip
    eve.api.post(f"{GLOBEX}/{resource}", bodies[resource])
    acme_before, globex_before = snapshot(acme), snapshot(globex)
    acme_id = world[resource]["id"]
    for method, body in (("GET", None), ("PATCH", CHANGES[resource]), ("DELETE", None)):
        response = alice.api.request(method, f"{GLOBEX}/{resource}/{acme_id}", body)
        assert response.status_code == 404, (method, response.content)
        assert response.json() == {"code": "not_found", "message": NOT_FOUND[resource], "details": None}
    assert snapshot(acme) == acme_before and snapshot(globex) == globex_before
    assert alice.api.get(f"{ORG}/{resource}/{acme_id}").json() == world[resource]


@pytest.mark.django_db
def test_an_id_of_another_organization_cannot_be_referenced_or_filtered_on(world, acme, globex, alice):
    Membership.objects.create(user=alice.user, organization=globex, role=Role.ADMIN)
    agent, campaign = world["agents"]["id"], world["campaigns"]["id"]
    refused = alice.api.post(f"{GLOBEX}/campaigns", {"name": "G", "agent_id": agent})
    assert refused.status_code == 422 and refused.json()["details"][0]["field"] == "agent_id"
    refused = alice.api.post(f"{GLOBEX}/leads", {"email": "g@example.com", "campaign_id": campaign})
    assert refused.status_code == 422 and refused.json()["details"][0]["field"] == "campaign_id"
    assert alice.api.get(f"{GLOBEX}/campaigns?agent_id={agent}").json() == {"items": [], "next_cursor": None}
    assert snapshot(globex) == {name: [] for name in MODELS}


@pytest.mark.django_db
def test_services_refuse_a_reference_of_another_kind_whoever_calls_them(world, acme):
    """Jobs and commands call the services without the API's schemas: the kind is checked there too."""
    from tenant_apps.campaigns.services import campaign_create
    from tenant_apps.phone_numbers.services import phone_number_create

    with tenant_context(acme):
        with pytest.raises(errors.ValidationFailed) as refused:
            campaign_create(data={"name": "C", "status": "draft", "agent_id": world["campaigns"]["id"]})
        assert refused.value.details == [{"field": "agent_id", "message": "Not an agent id (`agt_…`)."}]
        with pytest.raises(errors.ValidationFailed) as refused:
            phone_number_create(e164="+14155550199", label="", agent_id=world["leads"]["id"])
        assert refused.value.details[0]["field"] == "agent_id"
        assert Campaign.objects.count() == 1 and PhoneNumber.objects.count() == 1


@pytest.mark.django_db
def test_selectors_refuse_a_filter_of_another_kind_whoever_calls_them(world, acme):
    from tenant_apps.leads.selectors import lead_list

    with tenant_context(acme):
        with pytest.raises(errors.ValidationFailed) as refused:
            lead_list(campaign_id=world["agents"]["id"])
        assert [d["field"] for d in refused.value.details] == ["campaign_id"]
        assert list(lead_list(campaign_id=world["campaigns"]["id"]).values_list("uid", flat=True)) == [
            world["leads"]["id"]
        ]


def test_the_openapi_schema_states_the_id_patterns(client):
    spec = client.get("/api/v1/openapi.json").json()
    components = spec["components"]["schemas"]
    expected = [("AgentOut", "id", "agt"), ("CampaignOut", "id", "cmp"), ("CampaignOut", "agent_id", "agt"),
                ("CampaignCreateIn", "agent_id", "agt"), ("CampaignUpdateIn", "agent_id", "agt"),
                ("LeadOut", "id", "led"), ("LeadOut", "campaign_id", "cmp"), ("LeadIn", "campaign_id", "cmp"),
                ("LeadUpdateIn", "campaign_id", "cmp"), ("PhoneNumberOut", "id", "pn"),
                ("PhoneNumberOut", "agent_id", "agt"), ("PhoneNumberIn", "agent_id", "agt"),
                ("PhoneNumberUpdateIn", "agent_id", "agt"), ("AuditEntryOut", "id", "aud")]  # fmt: skip
    for component, prop, prefix in expected:
        schema = components[component]["properties"][prop]
        patterns = [s.get("pattern") for s in schema.get("anyOf", [schema])]
        assert f"^{prefix}_[0-9a-z]{{26}}$" in patterns, (component, prop, schema)
    for path, parameter, prefix in (("campaigns", "agent_id", "agt"), ("leads", "campaign_id", "cmp"),
                                    ("phone-numbers", "agent_id", "agt")):  # fmt: skip
        parameters = spec["paths"][f"/api/v1/organizations/{{slug}}/{path}"]["get"]["parameters"]
        (schema,) = [p["schema"] for p in parameters if p["name"] == parameter]
        assert f"^{prefix}_[0-9a-z]{{26}}$" in [s.get("pattern") for s in schema["anyOf"]], (path, schema)


@pytest.mark.django_db
def test_deleting_tenant_data_audits_the_objects_id(world, acme, alice):
    for resource in ("phone-numbers", "leads", "campaigns", "agents"):
        assert alice.api.delete(f"{ORG}/{resource}/{world[resource]['id']}").status_code == 204
    with tenant_context(acme):
        targets = list(AuditEntry.objects.order_by("id").values_list("action", "target_id"))
    assert targets == [
        ("phone_number.deleted", world["phone-numbers"]["id"]), ("lead.deleted", world["leads"]["id"]),
        ("campaign.deleted", world["campaigns"]["id"]), ("agent.deleted", world["agents"]["id"]),
    ]  # fmt: skip


@pytest.mark.django_db
def test_the_lead_created_event_carries_the_leads_id(acme, alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    alice.api.post(f"{ORG}/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["lead.created"]})
    lead = alice.api.post(f"{ORG}/leads", {"email": "ev@example.com"}).json()
    with tenant_context(acme):
        (delivery,) = WebhookDelivery.objects.filter(event_type="lead.created")
    payload = json.loads(delivery.payload)
    assert payload["data"]["lead"] == {"id": lead["id"], "email": "ev@example.com", "phone": "", "source": "manual"}


@pytest.mark.django_db
def test_imports_give_every_lead_an_id_and_take_campaign_ids(world, acme, alice):
    campaign = world["campaigns"]["id"]
    rows = [{"email": f"i{i}@example.com", "campaign_id": campaign} for i in range(3)] + [{"email": "n@example.com"}]
    assert alice.api.post(f"{ORG}/leads/import", rows).json() == {"imported": 4}
    csv = f"email,campaign_id\nc1@example.com,{campaign}\nc2@example.com,\n"
    assert alice.api.post(f"{ORG}/leads/import", raw=csv.encode(), content_type="text/csv").json() == {"imported": 2}
    with tenant_context(acme):
        imported = list(Lead.objects.filter(source="import").values_list("uid", "campaign__uid"))
    assert len(imported) == 6 and len({uid for uid, _ in imported}) == 6
    assert all(uid_re("led").match(uid) for uid, _ in imported)
    assert sorted(c or "" for _, c in imported) == sorted([campaign] * 4 + ["", ""])
    listed = alice.api.get(f"{ORG}/leads?campaign_id={campaign}&source=import").json()["items"]
    assert len(listed) == 4


@pytest.mark.django_db
def test_an_import_row_with_a_campaign_id_of_another_kind_or_unknown_is_refused(world, acme, alice):
    rows = [{"email": "ok@example.com", "campaign_id": world["campaigns"]["id"]},
            {"email": "kind@example.com", "campaign_id": world["agents"]["id"]},
            {"email": "unknown@example.com", "campaign_id": UNKNOWN["cmp"]},
            {"email": "old@example.com", "campaign_id": "1"}]  # fmt: skip
    response = alice.api.post(f"{ORG}/leads/import", rows)
    assert response.status_code == 422
    assert sorted((d["row"], d["field"]) for d in response.json()["details"]) == [
        (2, "campaign_id"), (3, "campaign_id"), (4, "campaign_id")
    ]  # fmt: skip
    with tenant_context(acme):
        assert Lead.objects.count() == 1  # the world's lead only


@pytest.mark.django_db
@pytest.mark.parametrize(("resource", "field"), [("campaigns", "agent_id"), ("leads", "campaign_id"),
                                                 ("phone-numbers", "agent_id")])  # fmt: skip
def test_showing_references_costs_no_query_per_row(world, acme, alice, resource, field):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert alice.api.get(f"{ORG}/{resource}").json()["items"][0][field]
    with tenant_context(acme):
        agent = Agent.objects.get()
        for i in range(10):
            campaign = Campaign.objects.create(name=f"c{i}", agent=agent)
            Lead.objects.create(email=f"q{i}@example.com", campaign=campaign)
            PhoneNumber.objects.create(e164=f"+1415555020{i}", agent=agent)
    with CaptureQueriesContext(connection) as eleven:
        items = alice.api.get(f"{ORG}/{resource}").json()["items"]
    assert len(items) == 11 and all(item[field] for item in items)
    assert len(eleven.captured_queries) == len(one.captured_queries)
