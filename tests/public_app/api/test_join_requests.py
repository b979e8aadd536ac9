"""Join requests (issue 20, item 3): who may ask, approve with a role (seats permitting), decline, the requester
emailed; role by role, with a second organization present."""

from typing import Any

import pytest
from django.utils import timezone

from public_app.models import JoinRequest, Membership, Organization, OrganizationDomain, User
from public_app.services.emails import join_request_email_send
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tests.conftest import make_persona

ASK = "/api/v1/me/join-requests"
PENDING = "/api/v1/organizations/acme/join-requests"


def open_requests(organization: Organization) -> None:
    Organization.objects.filter(id=organization.id).update(join_requests_open=True)


def test_nobody_may_ask_an_organization_that_does_not_take_requests(acme, globex, eve):
    stranger = make_persona("sam@elsewhere.io", "Sam")
    for persona in (stranger, eve):
        refused = persona.api.post(ASK, {"organization": "acme"})
        assert refused.status_code == 404 and refused.json()["message"] == "Organization not found."
    assert stranger.api.post(ASK, {"organization": "no-such-org"}).status_code == 404
    assert not JoinRequest.objects.exists()


def test_a_request_approved_with_a_role_makes_a_member_who_is_emailed(acme, globex, alice, bob, carol, mailbox):
    open_requests(acme)
    sam = make_persona("sam@elsewhere.io", "Sam")
    asked = sam.api.post(ASK, {"organization": "acme", "message": "Sales team"})
    assert asked.status_code == 201, asked.content
    body = asked.json()
    assert (body["status"], body["role"], body["message"], body["organization"]["slug"]) == (
        "pending", None, "Sales team", "acme")  # fmt: skip
    again = sam.api.post(ASK, {"organization": "acme"})
    assert again.status_code == 409
    assert [r["id"] for r in bob.api.get(PENDING).json()["items"]] == [body["id"]]
    assert carol.api.get(PENDING).status_code == 403  # members do not see them
    # an admin cannot approve as owner; approving as admin works
    escalation = bob.api.post(f"{PENDING}/{body['id']}/approve", {"role": "owner"})
    assert escalation.status_code == 403 and escalation.json()["code"] == "role_escalation"
    approved = bob.api.post(f"{PENDING}/{body['id']}/approve", {"role": "admin"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert Membership.objects.get(organization=acme, user=sam.user).role == "admin"
    assert sam.api.get("/api/v1/organizations/acme").status_code == 200
    assert bob.api.post(f"{PENDING}/{body['id']}/decline").status_code == 409  # answered already
    request = JoinRequest.objects.get(uid=body["id"])
    assert join_request_email_send(join_request_id=request.id) is True
    assert join_request_email_send(join_request_id=request.id) is False  # once
    assert [m["To"] for m in mailbox] == ["sam@elsewhere.io"] and "approved" in mailbox[0].get_payload()
    with tenant_context(acme):
        actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["join_request.created", "member.added", "join_request.approved"]
    assert [r["status"] for r in sam.api.get(ASK).json()["items"]] == ["approved"]


def test_people_at_a_verified_domain_may_ask_and_a_decline_is_emailed(acme, alice, mailbox):
    OrganizationDomain.objects.create(organization=acme, domain="acme-corp.io", token="t", verified_at=timezone.now())
    zoe = make_persona("zoe@acme-corp.io", "Zoe")
    asked = zoe.api.post(ASK, {"organization": "acme"}).json()
    declined = alice.api.post(f"{PENDING}/{asked['id']}/decline")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert not Membership.objects.filter(user=zoe.user).exists()
    join_request_email_send(join_request_id=JoinRequest.objects.get(uid=asked["id"]).id)
    assert "declined" in mailbox[-1].get_payload()
    assert zoe.api.post(ASK, {"organization": "acme"}).status_code == 201  # may ask again


def test_unverified_addresses_members_and_the_seat_cap(acme, alice, carol, settings):
    open_requests(acme)
    uma = make_persona("uma@elsewhere.io", "Uma")
    User.objects.filter(id=uma.user.id).update(email_verified_at=None)
    refused = uma.api.post(ASK, {"organization": "acme"})
    assert refused.status_code == 403 and refused.json()["code"] == "email_not_verified"
    member = carol.api.post(ASK, {"organization": "acme"})
    assert member.status_code == 409 and member.json()["code"] == "already_member"
    sam = make_persona("sam@elsewhere.io", "Sam")
    asked = sam.api.post(ASK, {"organization": "acme"}).json()
    settings.FREE_PLAN_MAX_SEATS = Membership.objects.filter(organization=acme).count()
    full = alice.api.post(f"{PENDING}/{asked['id']}/approve", {"role": "member"})
    assert full.status_code == 409 and full.json()["code"] == "seat_limit_reached"
    assert JoinRequest.objects.get(uid=asked["id"]).status == "pending"  # unchanged, can be approved later


def test_a_request_can_be_withdrawn_and_other_organizations_never_see_it(acme, globex, eve):
    open_requests(acme)
    sam = make_persona("sam@elsewhere.io", "Sam")
    asked = sam.api.post(ASK, {"organization": "acme"}).json()
    assert eve.api.get("/api/v1/organizations/globex/join-requests").json()["items"] == []
    assert eve.api.post(f"/api/v1/organizations/globex/join-requests/{asked['id']}/approve", {}).status_code == 404
    assert eve.api.delete(f"{ASK}/{asked['id']}").status_code == 404  # not eve's
    assert sam.api.delete(f"{ASK}/{asked['id']}").status_code == 204
    assert JoinRequest.objects.get(uid=asked["id"]).status == "cancelled"


def test_join_requests_are_rate_limited_per_user(acme, globex, settings: Any):
    settings.RATELIMIT_JOIN_REQUESTS_PER_USER_PER_DAY = 1
    open_requests(acme)
    open_requests(globex)
    sam = make_persona("sam@elsewhere.io", "Sam")
    assert sam.api.post(ASK, {"organization": "acme"}).status_code == 201
    assert sam.api.post(ASK, {"organization": "globex"}).status_code == 429


@pytest.mark.parametrize(("persona", "status"), [("owner", 200), ("admin", 200), ("member", 403),
                                                  ("billing", 403), ("outsider", 404)])  # fmt: skip
def test_who_may_open_requests_by_slug(acme, globex, personas, persona, status):
    response = personas[persona].api.patch("/api/v1/organizations/acme", {"join_requests_open": True})
    assert response.status_code == status
    assert Organization.objects.get(id=acme.id).join_requests_open is (status == 200)
