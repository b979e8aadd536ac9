"""SCIM 2.0 (issue 21): an organization's identity provider provisions its members. The mapping (a SCIM user is a
membership of that organization; groups map to roles; `active: false` deactivates; deletion removes the membership,
never the account), the isolation between organizations (a token of one sees nothing of the other), the PATCH
shapes Okta and Entra ID really send, tokens, and SCIM's error format."""

import json
from typing import Any

import pytest

from public_app.models import DirectoryUser, Membership, Role, ScimToken, User
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tenant_apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Api, Persona

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class Scim:
    """A directory speaking SCIM to one organization's base URL with its bearer token."""

    def __init__(self, slug: str, token: str) -> None:
        self.base, self.api = f"/scim/v2/organizations/{slug}", Api(token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.api.request(method, f"{self.base}{path}", body, content_type="application/scim+json")
        if response.content:
            assert response["Content-Type"] == "application/scim+json", response.content
        return response

    def create_user(self, user_name: str, **extra: Any) -> Any:
        body = {"schemas": [USER_SCHEMA], "userName": user_name, "emails": [{"value": user_name, "primary": True}],
                "name": {"givenName": "Pat", "familyName": "Lee"}, "active": True, **extra}  # fmt: skip
        return self.call("POST", "/Users", body)

    def create_group(self, name: str, members: list[str]) -> Any:
        body = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": [{"value": m} for m in members]}
        return self.call("POST", "/Groups", body)

    def patch(self, path: str, *operations: dict[str, Any]) -> Any:
        return self.call("PATCH", path, {"schemas": [PATCH_SCHEMA], "Operations": list(operations)})


@pytest.fixture(autouse=True)
def _seats(settings: Any) -> None:
    settings.FREE_PLAN_MAX_SEATS = 50


def token_for(owner: Persona, slug: str) -> str:
    response = owner.api.post(f"/api/v1/organizations/{slug}/scim/tokens", {"name": "Okta"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("scim_") and body["base_url"].endswith(f"/scim/v2/organizations/{slug}")
    return body["token"]


@pytest.fixture
def acme_scim(acme: Any, alice: Persona) -> Scim:
    return Scim("acme", token_for(alice, "acme"))


def member(organization: Any, email: str) -> Membership | None:
    return Membership.objects.filter(organization=organization, user__email=email).first()


def test_a_provisioned_user_is_a_membership_whose_role_follows_the_mapped_groups(acme, alice, acme_scim):
    created = acme_scim.create_user("pat@acme-corp.io", externalId="okta-1")
    assert created.status_code == 201, created.content
    user = created.json()
    assert user["id"].startswith("scu_") and user["meta"]["location"].endswith(f"/Users/{user['id']}")
    assert created["Location"] == user["meta"]["location"]
    account = User.objects.get(email="pat@acme-corp.io")
    assert not account.has_usable_password() and account.email_verified_at is None  # the person's, to claim
    assert member(acme, "pat@acme-corp.io").role == Role.MEMBER  # the default role
    # groups map to roles; the first mapping naming one of the member's groups wins
    response = alice.api.patch("/api/v1/organizations/acme/scim", {"default_role": "billing", "group_roles": [
        {"group": "Admins", "role": "admin"}, {"group": "Engineering", "role": "member"}]})  # fmt: skip
    assert response.status_code == 200, response.content
    assert member(acme, "pat@acme-corp.io").role == Role.BILLING  # in no mapped group: the new default
    group = acme_scim.create_group("engineering", [user["id"]]).json()
    assert member(acme, "pat@acme-corp.io").role == Role.MEMBER
    acme_scim.create_group("Admins", [user["id"]])
    assert member(acme, "pat@acme-corp.io").role == Role.ADMIN
    fetched = acme_scim.call("GET", f"/Users/{user['id']}").json()
    assert sorted(g["display"] for g in fetched["groups"]) == ["Admins", "engineering"]
    assert acme_scim.call("GET", f"/Groups/{group['id']}").json()["members"][0]["value"] == user["id"]


def test_deactivation_and_deletion_follow_the_directory_and_the_account_stays(acme, globex, alice, eve, acme_scim):
    user = acme_scim.create_user("eve@example.com").json()  # eve has an account and her own organization
    assert member(acme, "eve@example.com").role == Role.MEMBER
    assert eve.api.get("/api/v1/organizations/acme/agents").status_code == 200
    # Okta's deactivation
    response = acme_scim.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    assert response.status_code == 200 and response.json()["active"] is False
    assert eve.api.get("/api/v1/organizations/acme/agents").status_code == 404  # at once
    assert member(acme, "eve@example.com").deactivated_at is not None
    # Entra ID's reactivation: capitalised op, the value as a string
    response = acme_scim.patch(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "True"})
    assert response.status_code == 200 and response.json()["active"] is True
    assert eve.api.get("/api/v1/organizations/acme/agents").status_code == 200
    assert acme_scim.call("DELETE", f"/Users/{user['id']}").status_code == 204
    assert member(acme, "eve@example.com") is None
    assert User.objects.filter(email="eve@example.com", is_active=True).exists()
    assert eve.api.get("/api/v1/organizations/globex/agents").status_code == 200  # her other organization
    assert acme_scim.call("GET", f"/Users/{user['id']}").status_code == 404
    with tenant_context(acme):
        actions = list(AuditEntry.objects.filter(actor_type="directory").values_list("action", flat=True))
    assert {"member.added", "member.deactivated", "member.reactivated", "member.removed"} <= set(actions)
    # as the owner reads it
    entries = alice.api.get("/api/v1/organizations/acme/audit-log?limit=50").json()["items"]
    assert {"type": "directory", "label": "SCIM: Okta"}.items() <= next(
        e["actor"] for e in entries if e["action"] == "member.removed").items()


def test_group_membership_patches_as_identity_providers_send_them(acme, alice, acme_scim):
    alice.api.patch("/api/v1/organizations/acme/scim", {"group_roles": [{"group": "Admins", "role": "admin"}]})
    one = acme_scim.create_user("one@acme-corp.io").json()["id"]
    two = acme_scim.create_user("two@acme-corp.io").json()["id"]
    group = acme_scim.create_group("Admins", []).json()["id"]
    # Entra ID: add members with a path and a list of values
    response = acme_scim.patch(f"/Groups/{group}", {"op": "Add", "path": "members",
                                                    "value": [{"value": one}, {"value": two}]})  # fmt: skip
    assert response.status_code == 200, response.content
    assert {member(acme, e).role for e in ("one@acme-corp.io", "two@acme-corp.io")} == {Role.ADMIN}
    # Okta and Entra ID: remove one member by a value filter
    response = acme_scim.patch(f"/Groups/{group}", {"op": "remove", "path": f'members[value eq "{one}"]'})
    assert response.status_code == 200, response.content
    assert member(acme, "one@acme-corp.io").role == Role.MEMBER and member(acme, "two@acme-corp.io").role == "admin"
    # Okta: rename the group (the mapping names groups: it no longer matches)
    response = acme_scim.patch(f"/Groups/{group}", {"op": "replace", "value": {"id": group, "displayName": "Ops"}})
    assert response.status_code == 200 and response.json()["displayName"] == "Ops"
    assert member(acme, "two@acme-corp.io").role == Role.MEMBER
    # a member that is no user of this directory
    response = acme_scim.patch(f"/Groups/{group}", {"op": "add", "path": "members", "value": [{"value": "scu_x"}]})
    assert response.status_code == 400 and response.json()["schemas"] == [ERROR_SCHEMA]
    assert acme_scim.call("DELETE", f"/Groups/{group}").status_code == 204


def test_lists_filter_and_page_as_providers_ask(acme, acme_scim):
    for index in range(3):
        acme_scim.create_user(f"u{index}@acme-corp.io", externalId=f"ext-{index}")
    found = acme_scim.call("GET", '/Users?filter=userName eq "U1@acme-corp.io"').json()
    assert found["totalResults"] == 1 and found["Resources"][0]["userName"] == "u1@acme-corp.io"
    assert acme_scim.call("GET", '/Users?filter=externalId eq "ext-2"').json()["totalResults"] == 1
    assert acme_scim.call("GET", '/Users?filter=emails[value eq "u0@acme-corp.io"]').json()["totalResults"] == 1
    page = acme_scim.call("GET", "/Users?startIndex=2&count=1").json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (3, 2, 1)
    assert page["Resources"][0]["userName"] == "u1@acme-corp.io"
    bad = acme_scim.call("GET", "/Users?filter=userName eq")
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"
    only = acme_scim.call("GET", "/Users?attributes=userName").json()["Resources"][0]
    assert set(only) <= {"schemas", "id", "userName"}


def test_a_token_reaches_its_own_organization_only(acme, globex, alice, eve, acme_scim):
    globex_scim = Scim("globex", token_for(eve, "globex"))
    user = acme_scim.create_user("pat@acme-corp.io").json()
    group = acme_scim.create_group("Team", [user["id"]]).json()
    # globex's token on globex: nothing of acme's
    assert globex_scim.call("GET", "/Users").json()["totalResults"] == 0
    assert globex_scim.call("GET", f"/Users/{user['id']}").status_code == 404
    assert globex_scim.call("GET", f"/Groups/{group['id']}").status_code == 404
    assert globex_scim.call("DELETE", f"/Users/{user['id']}").status_code == 404
    assert globex_scim.create_group("Theirs", [user["id"]]).status_code == 400  # not a user of globex
    # globex's token at acme's address, a user token, an API key, nothing: 401 in SCIM's shape
    key = alice.api.post("/api/v1/organizations/acme/api-keys", {"name": "k", "role": "admin"}).json()["key"]
    for token in (globex_scim.api.token, alice.token, key, None):
        response = Api(token).get("/scim/v2/organizations/acme/Users")
        assert response.status_code == 401 and response.json()["schemas"] == [ERROR_SCHEMA]
    # and a directory token is no API credential
    assert Api(acme_scim.api.token).get("/api/v1/organizations/acme").status_code == 401
    assert member(acme, "pat@acme-corp.io") is not None and member(globex, "pat@acme-corp.io") is None


def test_the_last_owner_and_seats_hold_with_a_clear_error(acme, alice, acme_scim, settings):
    created = acme_scim.create_user("alice@example.com")  # the directory takes over alice's membership
    assert created.status_code == 201, created.content
    owner = created.json()
    alice.api.patch("/api/v1/organizations/acme/scim", {"group_roles": [{"group": "Owners", "role": "owner"}]})
    acme_scim.create_group("Owners", [owner["id"]])
    assert member(acme, "alice@example.com").role == Role.OWNER
    response = acme_scim.patch(f"/Users/{owner['id']}", {"op": "replace", "path": "active", "value": False})
    assert response.status_code == 403 and "last_owner" in response.json()["detail"]
    assert member(acme, "alice@example.com").deactivated_at is None
    assert acme_scim.call("DELETE", f"/Users/{owner['id']}").status_code == 403
    settings.FREE_PLAN_MAX_SEATS = 4  # acme has 4 members
    response = acme_scim.create_user("late@acme-corp.io")
    assert response.status_code == 409 and "seat_limit_reached" in response.json()["detail"]
    assert not DirectoryUser.objects.filter(user_name="late@acme-corp.io").exists()


def test_an_unverified_account_gets_no_access_until_its_address_is_verified(acme, acme_scim):
    from public_app.services.auth import token_issue
    from public_app.services.verification import user_mark_verified

    squatter = User.objects.create_user("pat@acme-corp.io", "squatter-pass-1", name="Not Pat")
    token = token_issue(user=squatter)
    acme_scim.create_user("pat@acme-corp.io")
    assert Api(token).get("/api/v1/organizations/acme").status_code == 404
    user_mark_verified(user=squatter)  # whoever reads the mailbox
    assert Api(token).get("/api/v1/organizations/acme").status_code == 200


def test_tokens_are_hashed_listed_with_last_use_and_revocable(acme, alice, bob, carol, acme_scim):
    stored = ScimToken.objects.get(organization=acme)
    assert stored.key_hash != acme_scim.api.token and len(stored.key_hash) == 64
    acme_scim.call("GET", "/ServiceProviderConfig")
    listed = alice.api.get("/api/v1/organizations/acme/scim/tokens").json()["items"]
    assert listed[0]["last_used_at"] and "token" not in listed[0]
    assert carol.api.post("/api/v1/organizations/acme/scim/tokens", {"name": "x"}).status_code == 403
    assert bob.api.post("/api/v1/organizations/acme/scim/tokens", {"name": "x"}).status_code == 201
    assert alice.api.delete(f"/api/v1/organizations/acme/scim/tokens/{listed[0]['id']}").status_code == 204
    assert acme_scim.call("GET", "/Users").status_code == 401
    # an admin cannot map a group to a role above their own
    response = bob.api.patch("/api/v1/organizations/acme/scim", {"group_roles": [{"group": "O", "role": "owner"}]})
    assert (response.status_code, response.json()["code"]) == (403, "role_escalation")


def test_discovery_and_errors_speak_scim(acme, acme_scim):
    config = acme_scim.call("GET", "/ServiceProviderConfig").json()
    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    types = acme_scim.call("GET", "/ResourceTypes").json()
    assert {t["name"] for t in types["Resources"]} == {"User", "Group"}
    schemas = acme_scim.call("GET", "/Schemas").json()
    assert {s["id"] for s in schemas["Resources"]} == {USER_SCHEMA, GROUP_SCHEMA}
    assert acme_scim.call("GET", f"/Schemas/{USER_SCHEMA}").json()["name"] == "User"
    for response, status in ((acme_scim.call("GET", "/Nope"), 404), (acme_scim.call("POST", "/Users", [1]), 400),
                             (acme_scim.create_user("not an email"), 400),
                             (acme_scim.call("POST", "/Users", {"schemas": [USER_SCHEMA]}), 400)):  # fmt: skip
        assert response.status_code == status, response.content
        body = json.loads(response.content)
        assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status) and body["detail"]
    assert acme_scim.create_user("dup@acme-corp.io").status_code == 201
    duplicate = acme_scim.create_user("DUP@acme-corp.io")
    assert duplicate.status_code == 409 and duplicate.json()["scimType"] == "uniqueness"


def test_member_webhook_events_carry_directory_changes(acme, acme_scim):
    with tenant_context(acme):
        WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret_encrypted="x",
                                       events=["member.added", "member.deactivated"])  # fmt: skip
    user = acme_scim.create_user("pat@acme-corp.io").json()
    acme_scim.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    with tenant_context(acme):
        assert list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True)) == [
            "member.added", "member.deactivated"]  # fmt: skip


def test_a_role_a_group_mapping_names_cannot_be_deleted(acme, alice):
    alice.api.post("/api/v1/organizations/acme/roles", {"key": "support", "name": "Support", "permissions": []})
    alice.api.patch("/api/v1/organizations/acme/scim", {"group_roles": [{"group": "Help", "role": "support"}]})
    response = alice.api.delete("/api/v1/organizations/acme/roles/support")
    assert (response.status_code, response.json()["code"]) == (409, "role_in_use")
    assert response.json()["details"]["directory_mappings"]["items"] == [{"group": "Help"}]
    alice.api.patch("/api/v1/organizations/acme/scim", {"group_roles": []})
    assert alice.api.delete("/api/v1/organizations/acme/roles/support").status_code == 204
