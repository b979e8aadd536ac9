"""Organization API keys: shown once, stored hashed, scoped to one organization with a role, revoked at once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from public_app.models import ApiKey
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tests.conftest import Api

KEYS = "/api/v1/organizations/acme/api-keys"


def create_key(persona, role="member", **extra):
    r = persona.api.post(KEYS, {"name": f"{role} key", "role": role, **extra})
    assert r.status_code == 201, r.content
    return r.json()


@pytest.mark.django_db
def test_create_shows_the_key_once_and_stores_only_a_hash(acme, alice):
    body = create_key(alice, "admin")
    key = ApiKey.objects.get()
    assert body == {
        "id": key.uid, "name": "admin key", "role": "admin", "prefix": key.prefix, "key": body["key"],
        "created_by": {"id": alice.user.uid, "email": "alice@example.com", "name": "Alice Owner"},
        "created_at": body["created_at"], "expires_at": None, "last_used_at": None,
    }  # fmt: skip
    assert body["key"].startswith(key.prefix + "_")
    assert key.prefix.startswith("ak_") and len(key.prefix) == 11
    assert body["key"] not in str(ApiKey.objects.values().first())
    listed = alice.api.get(KEYS).json()["items"]
    assert [k["id"] for k in listed] == [key.uid]
    assert "key" not in listed[0]
    with tenant_context(acme):
        assert list(AuditEntry.objects.values_list("action", flat=True)) == ["api_key.created"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "status"), [("owner", 201), ("admin", 201), ("member", 403), ("billing", 403), ("outsider", 404)]
)
def test_who_may_create_keys(acme, globex, personas, persona, status):
    r = personas[persona].api.post(KEYS, {"name": "k", "role": "member"})
    assert r.status_code == status
    if status != 201:
        assert ApiKey.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [{"name": "k", "role": "owner"}, {"name": "k", "role": "billing"}, {"name": "", "role": "member"},
     {"name": "k", "role": "member", "expires_at": "2020-01-01T00:00:00Z"},
     {"name": "k", "role": "member", "expires_at": "2030-01-01T00:00:00"}, {"role": "member"}],
)  # fmt: skip
def test_invalid_key_requests_are_422(acme, alice, payload):
    assert alice.api.post(KEYS, payload).status_code == 422
    assert ApiKey.objects.count() == 0


@pytest.mark.django_db
def test_member_key_reads_and_writes_tenant_data_in_its_own_organization(acme, globex, alice, eve):
    key = Api(create_key(alice, "member")["key"])
    assert key.post("/api/v1/organizations/acme/agents", {"name": "by key"}).status_code == 201
    assert [a["name"] for a in key.get("/api/v1/organizations/acme/agents").json()["items"]] == ["by key"]
    assert key.get("/api/v1/organizations/acme/members").status_code == 200
    assert key.get("/api/v1/organizations/acme").json()["role"] == "member"
    # member role: no member management
    assert (
        key.post("/api/v1/organizations/acme/invitations", {"email": "x@example.com", "role": "member"}).status_code
        == 403
    )


@pytest.mark.django_db
def test_a_key_is_an_outsider_everywhere_else(acme, globex, alice):
    key = Api(create_key(alice, "admin")["key"])
    for path in ("/api/v1/organizations/globex", "/api/v1/organizations/globex/agents",
                 "/api/v1/organizations/globex/members", "/api/v1/organizations/nope"):  # fmt: skip
        r = key.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/me/organizations", "/api/v1/me/invitations"])
def test_a_key_cannot_call_me(acme, alice, path):
    key = Api(create_key(alice)["key"])
    r = key.get(path)
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_a_key_cannot_create_organizations(acme, alice):
    key = Api(create_key(alice, "admin")["key"])
    assert key.post("/api/v1/organizations", {"name": "X", "slug": "by-key"}).status_code == 401


@pytest.mark.django_db
def test_keys_never_manage_keys(acme, alice):
    key = Api(create_key(alice, "admin")["key"])
    r = key.post(KEYS, {"name": "child", "role": "member"})
    assert r.status_code == 403
    assert r.json()["code"] == "permission_denied"
    assert key.get(KEYS).status_code == 403
    assert key.delete(f"{KEYS}/{ApiKey.objects.get().uid}").status_code == 403
    assert ApiKey.objects.filter(revoked_at=None).count() == 1


@pytest.mark.django_db
def test_admin_key_can_invite_and_is_audited_as_the_key(acme, alice):
    body = create_key(alice, "admin")
    key = Api(body["key"])
    r = key.post("/api/v1/organizations/acme/invitations", {"email": "x@example.com", "role": "member"})
    assert r.status_code == 201
    assert r.json()["invited_by"] is None
    with tenant_context(acme):
        entry = AuditEntry.objects.get(action="invitation.created")
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == ("api_key", body["id"], "admin key")
    # but an admin key cannot invite an owner
    assert (
        key.post("/api/v1/organizations/acme/invitations", {"email": "y@example.com", "role": "owner"}).status_code
        == 403
    )


@pytest.mark.django_db
def test_revoked_key_stops_working_on_the_next_request(acme, alice):
    body = create_key(alice)
    key = Api(body["key"])
    assert key.get("/api/v1/organizations/acme/agents").status_code == 200  # cached now
    assert alice.api.delete(f"{KEYS}/{body['id']}").status_code == 204
    r = key.get("/api/v1/organizations/acme/agents")
    assert r.status_code == 401
    assert alice.api.get(KEYS).json()["items"] == []
    assert alice.api.delete(f"{KEYS}/{body['id']}").status_code == 404


@pytest.mark.django_db
def test_expired_key_is_refused(acme, alice):
    body = create_key(alice, expires_at=(timezone.now() + timedelta(hours=1)).isoformat())
    key = Api(body["key"])
    assert key.get("/api/v1/organizations/acme/agents").status_code == 200
    stored = ApiKey.objects.get(uid=body["id"])
    stored.expires_at = timezone.now() - timedelta(seconds=1)  # as if an hour had passed
    stored.save()
    assert key.get("/api/v1/organizations/acme/agents").status_code == 401


@pytest.mark.django_db
def test_last_used_at_is_written_at_most_once_a_minute(acme, alice):
    body = create_key(alice)
    key = Api(body["key"])
    key.get("/api/v1/organizations/acme/agents")
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    key.get("/api/v1/organizations/acme/agents")
    assert ApiKey.objects.get().last_used_at == first


@pytest.mark.django_db
def test_keys_of_another_organization_cannot_be_revoked_through_this_one(acme, globex, alice, eve):
    foreign = eve.api.post("/api/v1/organizations/globex/api-keys", {"name": "g", "role": "member"}).json()
    assert alice.api.delete(f"{KEYS}/{foreign['id']}").status_code == 404
    assert Api(foreign["key"]).get("/api/v1/organizations/globex/agents").status_code == 200
