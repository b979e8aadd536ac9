"""Deactivate and reactivate a member (issue 20, item 4): access ends at once, the seat is released, the role and
history are kept, reactivation restores them seat permitting. Role by role, with a second organization present."""

import pytest

from public_app.models import ApiKey, Invitation, InvitationStatus, Membership, Role
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tests.conftest import Api, make_persona

MEMBERS = "/api/v1/organizations/acme/members"


def state(organization) -> dict[str, tuple[str, bool]]:
    return {email: (role, deactivated is None) for email, role, deactivated in
            Membership.objects.filter(organization=organization).values_list("user__email", "role", "deactivated_at")}


def actions(organization) -> list[tuple[str, str]]:
    with tenant_context(organization):
        return list(AuditEntry.objects.order_by("id").values_list("action", "target_label"))


def test_an_admin_deactivates_a_member_whose_access_ends_at_once_and_whose_role_is_kept(acme, globex, bob, carol, eve):
    assert carol.api.get("/api/v1/organizations/acme/agents").status_code == 200  # cached: access is in the memo
    response = bob.api.post(f"{MEMBERS}/{carol.user.uid}/deactivate")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["user"]["email"], body["role"], body["status"]) == ("carol@example.com", "member", "deactivated")
    assert body["deactivated_at"]
    # the very next request: gone, as after removal; the switcher no longer lists acme
    assert carol.api.get("/api/v1/organizations/acme/agents").status_code == 404
    assert carol.api.get("/api/v1/organizations/acme").status_code == 404
    assert [o["slug"] for o in carol.api.get("/api/v1/me/organizations").json()["items"]] == []
    # listed as deactivated, filterable
    listed = {m["user"]["email"]: m["status"] for m in bob.api.get(MEMBERS).json()["items"]}
    assert listed["carol@example.com"] == "deactivated" and listed["bob@example.com"] == "active"
    only = bob.api.get(f"{MEMBERS}?status=deactivated").json()["items"]
    assert [m["user"]["email"] for m in only] == ["carol@example.com"]
    assert ("member.deactivated", "carol@example.com") in actions(acme)
    assert eve.api.get("/api/v1/organizations/globex/agents").status_code == 200
    assert actions(globex) == [] or all(a != "member.deactivated" for a, _ in actions(globex))
    # again: nothing changes
    assert bob.api.post(f"{MEMBERS}/{carol.user.uid}/deactivate").status_code == 200
    assert [a for a, _ in actions(acme)].count("member.deactivated") == 1
    # reactivated with the same role
    response = bob.api.post(f"{MEMBERS}/{carol.user.uid}/reactivate")
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert state(acme)["carol@example.com"] == ("member", True)
    assert carol.api.get("/api/v1/organizations/acme/agents").status_code == 200
    assert ("member.reactivated", "carol@example.com") in actions(acme)


@pytest.mark.parametrize(
    ("actor", "target", "status", "code"),
    [
        ("owner", "admin", 200, None),
        ("admin", "member", 200, None),
        ("admin", "owner", 403, "role_escalation"),
        ("member", "billing", 403, "permission_denied"),
        ("billing", "member", 403, "permission_denied"),
        ("outsider", "member", 404, "not_found"),  # a member of globex
        ("admin", "admin", 403, "permission_denied"),  # yourself: leave instead
    ],
)
def test_who_may_deactivate_whom(acme, globex, personas, actor, target, status, code):
    before = state(acme)
    response = personas[actor].api.post(f"{MEMBERS}/{personas[target].user.uid}/deactivate")
    assert response.status_code == status, response.content
    if code:
        assert response.json()["code"] == code
        assert state(acme) == before  # nothing changed
    else:
        assert state(acme)[personas[target].user.email][1] is False


def test_the_last_active_owner_cannot_be_deactivated(acme, alice):
    olga = make_persona("olga@example.com", "Olga")
    Membership.objects.create(organization=acme, user=olga.user, role=Role.OWNER)
    assert alice.api.post(f"{MEMBERS}/{olga.user.uid}/deactivate").status_code == 200
    # olga is deactivated: she does not count as an owner, so alice is the last one
    refused = olga.api.post(f"{MEMBERS}/{alice.user.uid}/deactivate")
    assert refused.status_code == 404  # olga has no access any more
    refused = alice.api.delete(f"{MEMBERS}/{alice.user.uid}")  # leaving
    assert refused.status_code == 403 and refused.json()["code"] == "last_owner"
    demoted = alice.api.patch(f"{MEMBERS}/{alice.user.uid}", {"role": "admin"})
    assert demoted.status_code == 403 and demoted.json()["code"] == "last_owner"


def test_deactivation_frees_the_seat_and_reactivation_needs_one(acme, alice, carol, settings):
    settings.FREE_PLAN_MAX_SEATS = 4  # alice, bob, carol, dave
    full = alice.api.post("/api/v1/organizations/acme/invitations", {"email": "new@example.com", "role": "member"})
    assert full.status_code == 409 and full.json()["code"] == "seat_limit_reached"
    assert alice.api.post(f"{MEMBERS}/{carol.user.uid}/deactivate").status_code == 200
    invited = alice.api.post("/api/v1/organizations/acme/invitations", {"email": "new@example.com", "role": "member"})
    assert invited.status_code == 201  # carol's seat
    refused = alice.api.post(f"{MEMBERS}/{carol.user.uid}/reactivate")
    assert refused.status_code == 409 and refused.json()["code"] == "seat_limit_reached"
    assert state(acme)["carol@example.com"] == ("member", False)
    again = alice.api.post("/api/v1/organizations/acme/invitations", {"email": "carol@example.com", "role": "member"})
    assert again.status_code == 409 and again.json() == {
        "code": "already_member", "message": "This person is a deactivated member: reactivate them instead.",
        "details": None,
    }  # fmt: skip
    alice.api.delete(f"/api/v1/organizations/acme/invitations/{invited.json()['id']}")
    assert alice.api.post(f"{MEMBERS}/{carol.user.uid}/reactivate").status_code == 200


def test_a_deactivated_members_keys_and_invitations_end_and_their_role_cannot_change(acme, alice, bob):
    key = bob.api.post("/api/v1/organizations/acme/api-keys", {"name": "bob's", "role": "member"}).json()["key"]
    invitation = bob.api.post("/api/v1/organizations/acme/invitations", {"email": "x@example.com", "role": "member"})
    assert Api(key).get("/api/v1/organizations/acme/agents").status_code == 200
    assert alice.api.post(f"{MEMBERS}/{bob.user.uid}/deactivate").status_code == 200
    assert Api(key).get("/api/v1/organizations/acme/agents").status_code == 401
    assert ApiKey.objects.get(organization=acme, name="bob's").revoked_at is not None
    assert Invitation.objects.get(uid=invitation.json()["id"]).status == InvitationStatus.CANCELLED
    refused = alice.api.patch(f"{MEMBERS}/{bob.user.uid}", {"role": "member"})
    assert refused.status_code == 409 and refused.json()["code"] == "member_deactivated"
    assert state(acme)["bob@example.com"] == ("admin", False)
