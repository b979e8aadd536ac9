"""Custom roles (issue 20, item 1): an organization's own roles with permissions from the capability table, held by
members, invitations and API keys; the no-escalation rule over permissions; deletion refused while held; edits seen
by the very next request. Role by role, with a second organization present."""

from typing import Any

import pytest

from public_app.access import ROLE_CAPABILITIES, Capability
from public_app.models import ApiKey, CustomRole, Invitation, InvitationStatus, Membership, Role
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tenant_apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Api, Persona

ROLES = "/api/v1/organizations/acme/roles"
MEMBERS = "/api/v1/organizations/acme/members"
AGENTS = "/api/v1/organizations/acme/agents"
SUPPORT = {"key": "support", "name": "Support", "description": "Answers customers",
           "permissions": ["tenant:data", "members:manage"]}  # fmt: skip


@pytest.fixture(autouse=True)
def _seats_to_spare(settings: Any) -> None:
    settings.FREE_PLAN_MAX_SEATS = 50


def create(persona: Persona, body: dict[str, Any] = SUPPORT, path: str = ROLES) -> Any:
    return persona.api.post(path, body)


def give(owner: Persona, persona: Persona, role: str) -> None:
    response = owner.api.patch(f"{MEMBERS}/{persona.user.uid}", {"role": role})
    assert response.status_code == 200, response.content


def actions(organization: Any) -> list[str]:
    with tenant_context(organization):
        return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def test_an_owner_defines_a_role_that_lists_with_the_built_in_ones_in_this_organization_only(acme, globex, alice,
                                                                                             carol, eve):  # fmt: skip
    with tenant_context(acme):
        WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret_encrypted="x",
                                       events=["role.created", "role.updated", "role.deleted"])  # fmt: skip
    response = create(alice)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"] == "support" and body["builtin"] is False and body["id"].startswith("rol_")
    assert body["permissions"] == ["members:manage", "org:read", "tenant:data"]  # org:read always comes along
    listed = carol.api.get(ROLES).json()["items"]
    assert [r["key"] for r in listed] == ["owner", "admin", "member", "billing", "support"]
    assert listed[2] == {"key": "member", "name": "Member", "description": "", "builtin": True, "id": None,
                         "permissions": sorted(str(c) for c in ROLE_CAPABILITIES["member"]),
                         "created_at": None, "updated_at": None}  # fmt: skip
    assert carol.api.get(f"{ROLES}/support").json()["name"] == "Support"
    assert carol.api.get(f"{ROLES}/admin").json()["builtin"] is True
    assert carol.api.get(f"{ROLES}/nope").status_code == 404
    # the other organization has only the built-in roles, and acme's are not reachable from there
    assert [r["key"] for r in eve.api.get("/api/v1/organizations/globex/roles").json()["items"]] == [
        "owner", "admin", "member", "billing"]  # fmt: skip
    assert eve.api.get("/api/v1/organizations/globex/roles/support").status_code == 404
    assert eve.api.get(f"{ROLES}/support").status_code == 404
    assert "role.created" in actions(acme) and "role.created" not in actions(globex)
    with tenant_context(acme):
        assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["role.created"]


def test_roles_page_with_a_cursor_over_built_in_and_custom_roles(acme, alice):
    for key in ("zeta", "alpha", "mid"):
        assert create(alice, {**SUPPORT, "key": key, "name": key}).status_code == 201
    seen, cursor = [], None
    while True:
        page = alice.api.get(f"{ROLES}?limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [r["key"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["owner", "admin", "member", "billing", "alpha", "mid", "zeta"]
    assert alice.api.get(f"{ROLES}?cursor=garbage").status_code == 422


def test_a_member_with_a_custom_role_gets_its_permissions_and_an_edit_applies_on_the_next_request(acme, alice, carol):
    assert carol.api.get("/api/v1/organizations/acme/audit-log").status_code == 403
    create(alice, {**SUPPORT, "permissions": ["tenant:data", "audit:read"]})
    give(alice, carol, "support")
    assert carol.api.get("/api/v1/organizations/acme").json()["role"] == "support"
    assert carol.api.get("/api/v1/organizations/acme/audit-log").status_code == 200
    assert carol.api.get(AGENTS).status_code == 200
    members = {m["user"]["email"]: m["role"] for m in carol.api.get(MEMBERS).json()["items"]}
    assert members["carol@example.com"] == "support"
    # taking tenant:data away: the very next request is refused
    response = alice.api.patch(f"{ROLES}/support", {"permissions": ["audit:read"]})
    assert response.status_code == 200 and response.json()["permissions"] == ["audit:read", "org:read"]
    assert carol.api.get(AGENTS).status_code == 403
    assert carol.api.get("/api/v1/organizations/acme/audit-log").status_code == 200
    assert [r["role"] for r in carol.api.get("/api/v1/me/organizations").json()["items"]] == ["support"]


def test_nobody_creates_or_edits_a_role_with_a_permission_they_lack(acme, alice, bob):
    response = create(bob, {**SUPPORT, "key": "payer", "permissions": ["billing:manage"]})
    assert response.status_code == 403 and response.json()["code"] == "role_escalation"
    assert response.json()["details"] == {"missing_permissions": ["billing:manage"]}
    assert create(bob).status_code == 201  # an admin has members:manage and tenant:data
    assert create(alice, {**SUPPORT, "key": "payer", "permissions": ["billing:manage"]}).status_code == 201
    # an admin may neither edit nor delete a role holding more than they have, nor give it more
    for response in (bob.api.patch(f"{ROLES}/payer", {"name": "Payer"}), bob.api.delete(f"{ROLES}/payer"),
                     bob.api.patch(f"{ROLES}/support", {"permissions": ["org:delete"]})):  # fmt: skip
        assert (response.status_code, response.json()["code"]) == (403, "role_escalation")
    assert CustomRole.objects.get(organization=acme, key="payer").name == "Support"  # the refused rename
    assert CustomRole.objects.get(organization=acme, key="support").permissions == [
        "members:manage", "org:read", "tenant:data"]  # fmt: skip


def test_grants_follow_permissions_wherever_a_custom_role_is_involved(acme, alice, bob, carol, dave):
    """A holder of `support` (members:manage, tenant:data) may grant `member` and `support` but not `admin`,
    `billing` or a role with more; an admin may grant `support` but not a role with billing:manage."""
    create(alice)
    create(alice, {**SUPPORT, "key": "payer", "permissions": ["billing:manage"]})
    give(alice, carol, "support")
    response = carol.api.patch(f"{MEMBERS}/{dave.user.uid}", {"role": "member"})
    assert (response.status_code, response.json()["code"]) == (403, "role_escalation")  # dave is billing: more
    invite = "/api/v1/organizations/acme/invitations"
    assert carol.api.post(invite, {"email": "new@example.com", "role": "member"}).status_code == 201
    assert carol.api.post(invite, {"email": "new2@example.com", "role": "support"}).status_code == 201
    for role in ("admin", "billing", "payer", "owner"):
        response = carol.api.post(invite, {"email": f"x-{role}@example.com", "role": role})
        assert (response.status_code, response.json()["code"]) == (403, "role_escalation"), role
    assert bob.api.post(invite, {"email": "s@example.com", "role": "support"}).status_code == 201
    response = bob.api.post(invite, {"email": "p@example.com", "role": "payer"})
    assert (response.status_code, response.json()["code"]) == (403, "role_escalation")
    # an admin acts on a support holder; a support holder never on an admin
    response = carol.api.patch(f"{MEMBERS}/{bob.user.uid}", {"role": "member"})
    assert (response.status_code, response.json()["code"]) == (403, "role_escalation")
    give(bob, carol, "member")
    assert Membership.objects.get(organization=acme, user=carol.user).role == "member"


def test_unknown_roles_are_422_including_another_organizations_custom_role(acme, globex, alice, carol, eve):
    create(eve, path="/api/v1/organizations/globex/roles")
    for response in (
        alice.api.patch(f"{MEMBERS}/{carol.user.uid}", {"role": "support"}),
        alice.api.post("/api/v1/organizations/acme/invitations", {"email": "z@example.com", "role": "support"}),
        alice.api.post("/api/v1/organizations/acme/api-keys", {"name": "k", "role": "support"}),
        alice.api.patch(f"{MEMBERS}/{carol.user.uid}", {"role": "Not A Role"}),
        create(alice, {**SUPPORT, "permissions": ["tenant:data", "everything"]}),
        create(alice, {**SUPPORT, "key": "Bad Key"}),
    ):
        assert response.status_code == 422, response.content
    assert Membership.objects.get(organization=acme, user=carol.user).role == Role.MEMBER
    assert not CustomRole.objects.filter(organization=acme).exists()


def test_built_in_roles_cannot_be_changed_or_shadowed_and_keys_are_unique(acme, alice):
    assert create(alice).status_code == 201
    response = create(alice)
    assert (response.status_code, response.json()["code"]) == (409, "role_exists")
    response = create(alice, {**SUPPORT, "key": "admin"})
    assert (response.status_code, response.json()["code"]) == (409, "role_exists")
    for response in (alice.api.patch(f"{ROLES}/admin", {"name": "Boss"}), alice.api.delete(f"{ROLES}/owner")):
        assert (response.status_code, response.json()["code"]) == (409, "role_builtin")
    assert alice.api.patch(f"{ROLES}/ghost", {"name": "Boo"}).status_code == 404


def test_at_most_the_configured_number_of_custom_roles(acme, globex, alice, eve, settings):
    settings.CUSTOM_ROLES_MAX = 2
    for key in ("one", "two"):
        assert create(alice, {**SUPPORT, "key": key}).status_code == 201
    response = create(alice, {**SUPPORT, "key": "three"})
    assert (response.status_code, response.json()["code"]) == (409, "role_limit_reached")
    assert create(eve, {**SUPPORT, "key": "three"}, path="/api/v1/organizations/globex/roles").status_code == 201


def test_deleting_a_held_role_is_409_naming_the_holders_until_nobody_holds_it(acme, alice, carol):
    create(alice)
    give(alice, carol, "support")
    invitation = alice.api.post("/api/v1/organizations/acme/invitations", {"email": "i@example.com", "role": "support"})
    key = alice.api.post("/api/v1/organizations/acme/api-keys", {"name": "helpdesk", "role": "support"})
    assert invitation.status_code == 201 and key.status_code == 201
    response = alice.api.delete(f"{ROLES}/support")
    assert (response.status_code, response.json()["code"]) == (409, "role_in_use")
    details = response.json()["details"]
    assert details["members"] == {"count": 1, "items": [{"id": carol.user.uid, "email": "carol@example.com",
                                                         "status": "active"}]}  # fmt: skip
    assert details["invitations"]["items"] == [{"id": invitation.json()["id"], "email": "i@example.com"}]
    assert details["api_keys"]["items"] == [{"id": key.json()["id"], "name": "helpdesk"}]
    assert "(1 member, 1 invitation, 1 API key)" in response.json()["message"]
    # a deactivated holder still holds it (reactivation restores the role)
    assert alice.api.post(f"{MEMBERS}/{carol.user.uid}/deactivate").status_code == 200
    assert alice.api.delete(f"{ROLES}/support").json()["details"]["members"]["items"][0]["status"] == "deactivated"
    assert alice.api.post(f"{MEMBERS}/{carol.user.uid}/reactivate").status_code == 200
    give(alice, carol, "member")
    alice.api.delete(f"/api/v1/organizations/acme/invitations/{invitation.json()['id']}")
    alice.api.delete(f"/api/v1/organizations/acme/api-keys/{key.json()['id']}")
    assert alice.api.delete(f"{ROLES}/support").status_code == 204
    assert alice.api.get(f"{ROLES}/support").status_code == 404
    assert [a for a in actions(acme) if a.startswith("role.")] == ["role.created", "role.deleted"]


@pytest.mark.parametrize(("persona", "status"), [("owner", 201), ("admin", 201), ("member", 403), ("billing", 403),
                                                 ("outsider", 404)])  # fmt: skip
def test_who_may_define_roles(acme, globex, personas, persona, status):
    assert create(personas[persona]).status_code == status


def test_an_api_key_holds_a_custom_role_and_follows_its_edits(acme, alice, bob):
    create(alice, {**SUPPORT, "key": "ops", "permissions": ["tenant:data", "developers"]})
    created = bob.api.post("/api/v1/organizations/acme/api-keys", {"name": "ops-bot", "role": "ops"})
    assert created.status_code == 201 and created.json()["role"] == "ops"
    key = Api(created.json()["key"])
    assert key.get(AGENTS).status_code == 200
    assert alice.api.patch(f"{ROLES}/ops", {"permissions": ["developers"]}).status_code == 200
    assert key.get(AGENTS).status_code == 403  # the very next request
    # the role now does something its creator (an admin) cannot: the key ends
    assert alice.api.patch(f"{ROLES}/ops", {"permissions": ["developers", "billing:manage"]}).status_code == 200
    revoked = ApiKey.objects.get(uid=created.json()["id"])
    assert revoked.revoked_at is not None
    assert key.get("/api/v1/organizations/acme").status_code == 401
    # an admin cannot make a key with a role beyond their own
    response = bob.api.post("/api/v1/organizations/acme/api-keys", {"name": "x", "role": "ops"})
    assert (response.status_code, response.json()["code"]) == (403, "role_too_high")


def test_taking_a_permission_away_cancels_the_invitations_its_holders_could_no_longer_send(acme, alice, carol):
    create(alice)
    give(alice, carol, "support")
    sent = carol.api.post("/api/v1/organizations/acme/invitations", {"email": "n@example.com", "role": "member"})
    assert sent.status_code == 201
    assert alice.api.patch(f"{ROLES}/support", {"permissions": ["tenant:data"]}).status_code == 200
    assert Invitation.objects.get(uid=sent.json()["id"]).status == InvitationStatus.CANCELLED
    assert carol.api.post("/api/v1/organizations/acme/invitations",
                          {"email": "m@example.com", "role": "member"}).status_code == 403  # fmt: skip


def test_an_invitation_with_a_custom_role_makes_a_member_holding_it(acme, alice, eve):
    create(alice)
    invitation = alice.api.post("/api/v1/organizations/acme/invitations",
                                {"email": "eve@example.com", "role": "support"}).json()  # fmt: skip
    accepted = eve.api.post(f"/api/v1/me/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200 and accepted.json()["role"] == "support"
    assert eve.api.get(AGENTS).status_code == 200
    assert eve.api.get("/api/v1/organizations/acme/audit-log").status_code == 403


def test_the_role_model_is_one_cache_round_trip_for_custom_roles_too(committed, round_trips):
    owner, member = committed["owner"], committed["member"]
    assert create(owner, {**SUPPORT, "permissions": ["tenant:data"]}).status_code == 201
    give(owner, member, "support")
    assert member.api.get(AGENTS).status_code == 200  # the memo holds the organization with its roles
    round_trips.reset()
    assert member.api.get(AGENTS).status_code == 200
    assert round_trips.redis == 1 and len(round_trips.sql) == 1, round_trips.sql
    owner.api.patch(f"{ROLES}/support", {"permissions": []})
    assert member.api.get(AGENTS).status_code == 403
    assert Capability.ORG_READ in {Capability(p) for p in CustomRole.objects.get(key="support").permissions}
