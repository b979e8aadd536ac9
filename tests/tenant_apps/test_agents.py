import pytest
from django.db import connection

from tenant_apps.agents.models import Agent

AGENTS = "/api/v1/organizations/acme/agents"


def agents_in(organization) -> list[str]:
    with organization:
        return list(Agent.objects.order_by("id").values_list("name", flat=True))


@pytest.mark.django_db
def test_agent_crud(acme, alice):
    created = alice.api.post(
        AGENTS, {"name": "Ann", "language": "en-US", "voice": "alloy", "prompt": "Be kind.", "status": "active"}
    )
    assert created.status_code == 201
    body = created.json()
    agent_id = body["id"]
    assert body | {"created_at": None, "updated_at": None} == {
        "id": agent_id, "name": "Ann", "status": "active", "language": "en-US", "voice": "alloy",
        "prompt": "Be kind.", "created_at": None, "updated_at": None,
    }  # fmt: skip
    assert alice.api.get(f"{AGENTS}/{agent_id}").json() == body
    patched = alice.api.patch(f"{AGENTS}/{agent_id}", {"status": "paused", "name": "Annie"})
    assert patched.status_code == 200
    assert patched.json()["status"] == "paused"
    assert patched.json()["name"] == "Annie"
    assert patched.json()["prompt"] == "Be kind."
    deleted = alice.api.delete(f"{AGENTS}/{agent_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert alice.api.get(f"{AGENTS}/{agent_id}").status_code == 404


@pytest.mark.django_db
def test_agent_rows_live_only_in_the_organizations_schema(acme, globex, alice):
    alice.api.post(AGENTS, {"name": "Ann"})
    assert agents_in(acme) == ["Ann"]
    assert agents_in(globex) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'agents_agent'")
        schemas = {row[0] for row in cursor.fetchall()}
    assert "public" not in schemas
    assert {acme.schema_name, globex.schema_name} <= schemas


@pytest.mark.django_db
def test_other_organizations_agents_are_never_visible(acme, globex, alice, eve):
    eve.api.post("/api/v1/organizations/globex/agents", {"name": "Globex secret"})
    secret_id = eve.api.get("/api/v1/organizations/globex/agents").json()["items"][0]["id"]
    assert alice.api.get(AGENTS).json() == {"items": [], "next_cursor": None}
    # the same id in acme's schema does not exist: probing another organization's id is a 404
    assert alice.api.get(f"{AGENTS}/{secret_id}").status_code == 404
    assert alice.api.patch(f"{AGENTS}/{secret_id}", {"name": "x"}).status_code == 404
    assert alice.api.delete(f"{AGENTS}/{secret_id}").status_code == 404
    # and acme's members cannot reach globex's path at all
    for method in ("get", "post"):
        r = getattr(alice.api, method)("/api/v1/organizations/globex/agents")
        assert r.status_code == 404
        assert r.json()["code"] == "not_found"
    assert agents_in(globex) == ["Globex secret"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "allowed"), [("owner", True), ("admin", True), ("member", True), ("billing", False), ("outsider", False)]
)
def test_tenant_data_capability_by_role(acme, globex, personas, role, allowed):
    api = personas[role].api
    expected_refusal = 404 if role == "outsider" else 403
    listing = api.get(AGENTS)
    created = api.post(AGENTS, {"name": f"by {role}"})
    if allowed:
        assert listing.status_code == 200
        assert created.status_code == 201
        assert agents_in(acme) == [f"by {role}"]
    else:
        assert listing.status_code == created.status_code == expected_refusal
        assert created.json()["code"] == ("not_found" if role == "outsider" else "permission_denied")
        assert agents_in(acme) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "A", "status": "flying"}, "status"),
        ({"name": "A", "language": "english"}, "language"),
        ({"name": "A", "language": "en_US"}, "language"),
        ({"name": "A", "prompt": "x" * 20001}, "prompt"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": 42}, "name"),
    ],
)
def test_invalid_agent_is_422_and_changes_nothing(acme, alice, payload, field):
    r = alice.api.post(AGENTS, payload)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert field in {d["field"] for d in r.json()["details"]}
    assert agents_in(acme) == []


@pytest.mark.django_db
def test_patch_validation_changes_nothing(acme, alice):
    agent_id = alice.api.post(AGENTS, {"name": "Ann"}).json()["id"]
    r = alice.api.patch(f"{AGENTS}/{agent_id}", {"name": "New", "language": "nope nope"})
    assert r.status_code == 422
    assert agents_in(acme) == ["Ann"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "agent_id",
    ["abc", "0", "1", "99999", "1e3", "-1", "9" * 40, "agt_01jbz0000000000000000000zz",
     "agt_01JBZ0000000000000000000ZZ", "cmp_01jbz0000000000000000000zz", "agt_" + "0" * 27],
)  # fmt: skip
def test_unknown_agent_ids_are_404(acme, alice, agent_id):
    r = alice.api.get(f"{AGENTS}/{agent_id}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


@pytest.mark.django_db
def test_listing_paginates_newest_first_and_filters(acme, alice):
    for i in range(7):
        alice.api.post(AGENTS, {"name": f"a{i}", "status": "active" if i % 2 else "draft"})
    first = alice.api.get(f"{AGENTS}?limit=3").json()
    assert [a["name"] for a in first["items"]] == ["a6", "a5", "a4"]
    second = alice.api.get(f"{AGENTS}?limit=3&cursor={first['next_cursor']}").json()
    assert [a["name"] for a in second["items"]] == ["a3", "a2", "a1"]
    alice.api.post(AGENTS, {"name": "inserted-between-pages"})
    third = alice.api.get(f"{AGENTS}?limit=3&cursor={second['next_cursor']}").json()
    assert [a["name"] for a in third["items"]] == ["a0"]
    assert third["next_cursor"] is None
    active = alice.api.get(f"{AGENTS}?status=active").json()["items"]
    assert [a["name"] for a in active] == ["a5", "a3", "a1"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=abc", "limit=-1", "cursor=%%%", "cursor=djE6eA", "status=nope"]
)
def test_bad_list_parameters_are_422(acme, alice, query):
    r = alice.api.get(f"{AGENTS}?{query}")
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
