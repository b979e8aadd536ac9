"""Issue 20 at the service layer: the role rules as a table (built-in rank, custom roles by permissions, owners
apart), custom roles, verified domains (against the local DNS server), join requests and deactivation, each called
as a service with its caller object, a second organization present."""

from collections.abc import Iterator
from typing import Any

import pytest

from public_app import errors
from public_app.access import Access, Capability, Roles, roles_of
from public_app.models import CustomRole, DomainPolicy, JoinRequestStatus, Membership, Role
from public_app.services.domains import domain_create, domain_update, domain_verify, record_for, suggestions_for
from public_app.services.join_requests import join_request_approve, join_request_create, join_request_decline
from public_app.services.members import membership_change_role, membership_deactivate, membership_reactivate
from public_app.services.roles import custom_role_create, custom_role_delete, custom_role_update, role_holders
from tests.conftest import make_persona
from tests.fakes.dns import DnsServer

C = Capability
SUPPORT = frozenset({C.ORG_READ, C.TENANT_DATA, C.MEMBERS_MANAGE})
PAYER = frozenset({C.ORG_READ, C.BILLING_MANAGE})
ROLES = Roles(custom={"support": SUPPORT, "payer": PAYER})


@pytest.mark.parametrize(("actor", "role", "allowed"), [
    ("owner", "owner", True), ("admin", "owner", False), ("support", "owner", False),
    ("owner", "admin", True), ("admin", "admin", True), ("admin", "billing", True),  # API.md's rank
    ("admin", "member", True), ("member", "admin", False), ("billing", "admin", False),
    ("admin", "support", True), ("admin", "payer", False),  # a custom role: permissions decide
    ("support", "member", True), ("support", "support", True), ("support", "billing", False),
    ("support", "admin", False), ("support", "payer", False), ("payer", "billing", False),
    ("owner", "payer", True),
])  # fmt: skip
def test_who_may_grant_what(actor, role, allowed):
    assert ROLES.may_grant(actor, role) is allowed
    if allowed:
        ROLES.check_can_act_on(actor, role, role)
    else:
        with pytest.raises(errors.PermissionDenied) as refused:
            ROLES.check_can_act_on(actor, role, role)
        assert refused.value.code == "role_escalation"


def test_capabilities_of_built_in_custom_and_unknown_roles():
    assert ROLES.has("support", C.TENANT_DATA) and not ROLES.has("support", C.AUDIT_READ)
    assert ROLES.capabilities("ghost") == frozenset() and not ROLES.has(None, C.ORG_READ)
    assert ROLES.covers("admin", "support") and not ROLES.covers("support", "admin")
    assert "support" in ROLES and "ghost" not in ROLES and "owner" in ROLES
    with pytest.raises(errors.ValidationFailed):
        ROLES.require("ghost")


def owner_of(organization: Any, user: Any) -> Access:
    return Access.for_user(user, organization=organization, role=Role.OWNER)


def test_custom_roles_are_per_organization_and_read_fresh_under_the_lock(acme, globex, alice, bob, eve):
    owner = owner_of(acme, alice.user)
    role = custom_role_create(access=owner, key="support", name="Support", permissions=["tenant:data"])
    assert role.permissions == ["org:read", "tenant:data"]
    assert "support" in Roles.load(acme.id) and "support" not in Roles.load(globex.id)
    with pytest.raises(errors.ValidationFailed):  # globex's members cannot be given acme's role
        membership_change_role(access=owner_of(globex, eve.user), user_id=eve.user.id, role="support")
    admin = Access.for_user(bob.user, organization=acme, role=Role.ADMIN)
    with pytest.raises(errors.PermissionDenied):
        custom_role_update(access=admin, key="support", permissions=["tenant:data", "billing:manage"])
    custom_role_update(access=owner, key="support", permissions=["audit:read"])
    assert Roles.load(acme.id).capabilities("support") == {C.ORG_READ, C.AUDIT_READ}


def test_a_role_held_by_anyone_cannot_be_deleted(acme, alice, carol):
    owner = owner_of(acme, alice.user)
    custom_role_create(access=owner, key="support", name="Support", permissions=[])
    membership_change_role(access=owner, user_id=carol.user.id, role="support")
    assert role_holders(organization_id=acme.id, key="support")["members"]["count"] == 1
    with pytest.raises(errors.Conflict) as refused:
        custom_role_delete(access=owner, key="support")
    assert refused.value.code == "role_in_use"
    membership_change_role(access=owner, user_id=carol.user.id, role=Role.MEMBER)
    custom_role_delete(access=owner, key="support")
    assert not CustomRole.objects.filter(organization=acme).exists()


def test_roles_of_reads_once_per_organization_object(acme, alice, django_assert_num_queries):
    custom_role_create(access=owner_of(acme, alice.user), key="support", name="Support", permissions=[])
    acme.__dict__.pop("_roles", None)
    with django_assert_num_queries(1):
        assert "support" in roles_of(acme) and "support" in roles_of(acme)


@pytest.fixture
def dns_server(settings: Any) -> Iterator[DnsServer]:
    server = DnsServer().start()
    settings.DNS_RESOLVER, settings.DNS_TIMEOUT_SECONDS = server.address, 2
    yield server
    server.stop()


def test_a_domain_is_verified_by_a_real_lookup_and_only_then_gets_a_policy(acme, globex, alice, eve, dns_server):
    owner = owner_of(acme, alice.user)
    domain = domain_create(access=owner, domain="Acme-Services.io")
    assert domain.domain == "acme-services.io"
    with pytest.raises(errors.Conflict):
        domain_update(access=owner, uid=domain.uid, policy=DomainPolicy.SUGGEST, default_role=None)
    with pytest.raises(errors.ValidationFailed) as missing:
        domain_verify(access=owner, uid=domain.uid)
    assert missing.value.code == "domain_not_verified"
    record = record_for(domain)
    dns_server.txt[record["name"]] = [record["value"]]
    assert domain_verify(access=owner, uid=domain.uid).verified_at is not None
    # globex cannot claim a domain acme verified
    with pytest.raises(errors.Conflict) as taken:
        domain_create(access=owner_of(globex, eve.user), domain="acme-services.io")
    assert taken.value.code == "domain_taken"
    domain_update(access=owner, uid=domain.uid, policy=DomainPolicy.SUGGEST, default_role=None)
    colleague = make_persona("pat@acme-services.io", "Pat")
    assert [d.organization.slug for d in suggestions_for(user=colleague.user)] == ["acme"]
    with pytest.raises(errors.ValidationFailed):
        domain_create(access=owner, domain="gmail.com")


def test_join_requests_are_approved_with_a_role_within_the_approvers_and_seats(acme, globex, alice, bob, settings):
    acme.join_requests_open = True
    acme.save(update_fields=["join_requests_open"])
    asker = make_persona("asker@example.com", "Asker")
    request = join_request_create(user=asker.user, slug="acme", message="hi")
    with pytest.raises(errors.NotFound):  # globex did not open requests by slug
        join_request_create(user=asker.user, slug="globex")
    admin = Access.for_user(bob.user, organization=acme, role=Role.ADMIN)
    with pytest.raises(errors.PermissionDenied):
        join_request_approve(access=admin, uid=request.uid, role=Role.OWNER)
    settings.FREE_PLAN_MAX_SEATS = 4  # acme has 4 members
    with pytest.raises(errors.Conflict) as full:
        join_request_approve(access=admin, uid=request.uid)
    assert full.value.code == "seat_limit_reached"
    settings.FREE_PLAN_MAX_SEATS = 5
    assert join_request_approve(access=admin, uid=request.uid).status == JoinRequestStatus.APPROVED
    assert Membership.objects.get(organization=acme, user=asker.user).role == Role.MEMBER
    other = make_persona("other@example.com", "Other")
    declined = join_request_decline(access=admin, uid=join_request_create(user=other.user, slug="acme").uid)
    assert declined.status == JoinRequestStatus.DECLINED
    assert not Membership.objects.filter(user=other.user).exists()


def test_deactivation_keeps_the_role_and_frees_the_seat(acme, globex, alice, carol, eve, settings):
    owner = owner_of(acme, alice.user)
    membership_deactivate(access=owner, user_id=carol.user.id)
    held = Membership.objects.get(organization=acme, user=carol.user)
    assert held.deactivated_at is not None and held.role == Role.MEMBER
    assert Membership.objects.active().filter(organization=acme).count() == 3
    with pytest.raises(errors.Conflict):
        membership_change_role(access=owner, user_id=carol.user.id, role=Role.ADMIN)
    with pytest.raises(errors.NotFound):  # another organization's member is not acme's to touch
        membership_deactivate(access=owner, user_id=eve.user.id)
    settings.FREE_PLAN_MAX_SEATS = 3
    with pytest.raises(errors.Conflict):
        membership_reactivate(access=owner, user_id=carol.user.id)
    settings.FREE_PLAN_MAX_SEATS = 5
    assert membership_reactivate(access=owner, user_id=carol.user.id).deactivated_at is None
