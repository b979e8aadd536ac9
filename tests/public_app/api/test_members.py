"""Settings → Members: list, change role, remove, leave; role by role, with a second organization present."""

import threading

import pytest
from django.db import connection

from public_app import errors
from public_app.access import Access
from public_app.models import Membership, Role
from public_app.services.members import membership_change_role
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tests.conftest import make_org, make_persona

MEMBERS = "/api/v1/organizations/acme/members"


def roles(organization) -> dict[str, str]:
    return dict(Membership.objects.filter(organization=organization).values_list("user__email", "role"))


def audit(organization) -> list[tuple]:
    with tenant_context(organization):
        return list(
            AuditEntry.objects.order_by("id").values_list("action", "actor_label", "target_label", "ip", "data")
        )


@pytest.fixture
def olga(acme):
    """A second owner of acme."""
    persona = make_persona("olga@example.com", "Olga Owner")
    Membership.objects.create(organization=acme, user=persona.user, role=Role.OWNER)
    return persona


@pytest.fixture
def adam(acme):
    """A second admin of acme."""
    persona = make_persona("adam@example.com", "Adam Admin")
    Membership.objects.create(organization=acme, user=persona.user, role=Role.ADMIN)
    return persona


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing"])
def test_every_member_can_list_members(acme, globex, personas, role):
    r = personas[role].api.get(MEMBERS)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(m["user"]["email"], m["role"]) for m in items] == [
        ("dave@example.com", "billing"),
        ("carol@example.com", "member"),
        ("bob@example.com", "admin"),
        ("alice@example.com", "owner"),
    ]
    alice = personas["owner"].user
    assert items[-1]["user"] == {"id": alice.uid, "email": alice.email, "name": alice.name}
    assert "joined_at" in items[-1]
    assert "eve@example.com" not in {m["user"]["email"] for m in items}


@pytest.mark.django_db
def test_outsider_cannot_list_members(acme, globex, eve):
    assert eve.api.get(MEMBERS).status_code == 404


@pytest.mark.django_db
def test_member_list_paginates(acme, alice):
    first = alice.api.get(f"{MEMBERS}?limit=3").json()
    second = alice.api.get(f"{MEMBERS}?limit=3&cursor={first['next_cursor']}").json()
    assert len(first["items"]) == 3
    assert [m["user"]["email"] for m in second["items"]] == ["alice@example.com"]
    assert second["next_cursor"] is None


CHANGE_ROLE_CASES = [
    # actor, target, new role, expected status, error code
    ("owner", "member", "admin", 200, None),
    ("owner", "admin", "member", 200, None),
    ("owner", "member", "owner", 200, None),
    ("owner", "billing", "member", 200, None),
    ("owner", "olga", "admin", 200, None),
    ("admin", "member", "admin", 200, None),
    ("admin", "member", "billing", 200, None),
    ("admin", "adam", "member", 200, None),
    ("admin", "member", "owner", 403, "role_escalation"),
    ("admin", "owner", "admin", 403, "role_escalation"),
    ("admin", "olga", "member", 403, "role_escalation"),
    ("member", "billing", "member", 403, "permission_denied"),
    ("member", "member", "admin", 403, "permission_denied"),
    ("billing", "member", "admin", 403, "permission_denied"),
    ("billing", "billing", "admin", 403, "permission_denied"),
    ("outsider", "member", "admin", 404, "not_found"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("actor", "target", "new_role", "status", "code"), CHANGE_ROLE_CASES)
def test_change_role_rules(acme, globex, personas, olga, adam, actor, target, new_role, status, code):
    people = {**personas, "olga": olga, "adam": adam}
    target_user = people[target].user
    before = roles(acme)
    r = people[actor].api.patch(f"{MEMBERS}/{target_user.uid}", {"role": new_role})
    assert r.status_code == status, r.content
    if status == 200:
        assert r.json()["role"] == new_role
        assert r.json()["user"]["id"] == target_user.uid
        assert roles(acme)[target_user.email] == new_role
        assert audit(acme)[-1][:3] == ("member.role_changed", people[actor].user.email, target_user.email)
    else:
        assert r.json()["code"] == code
        assert roles(acme) == before
        assert audit(acme) == []


@pytest.mark.django_db
def test_the_last_owner_cannot_demote_themselves(acme, alice):
    r = alice.api.patch(f"{MEMBERS}/{alice.user.uid}", {"role": "admin"})
    assert r.status_code == 403
    assert r.json()["code"] == "last_owner"
    assert roles(acme)["alice@example.com"] == "owner"


@pytest.mark.django_db
def test_an_owner_can_step_down_when_another_owner_remains(acme, alice, olga):
    assert alice.api.patch(f"{MEMBERS}/{alice.user.uid}", {"role": "admin"}).status_code == 200
    assert roles(acme)["alice@example.com"] == "admin"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"role": "king"}, {}, {"role": None}, {"role": 3}])
def test_invalid_role_is_422(acme, alice, carol, body):
    r = alice.api.patch(f"{MEMBERS}/{carol.user.uid}", body)
    assert r.status_code == 422
    assert roles(acme)["carol@example.com"] == "member"


@pytest.mark.django_db
def test_unknown_or_foreign_member_id_is_404(acme, globex, alice, eve):
    assert alice.api.patch(f"{MEMBERS}/usr_nope", {"role": "admin"}).status_code == 404
    # eve exists but is not in acme: acme's owner cannot reach her through acme
    assert alice.api.patch(f"{MEMBERS}/{eve.user.uid}", {"role": "admin"}).status_code == 404
    assert alice.api.delete(f"{MEMBERS}/{eve.user.uid}").status_code == 404
    assert roles(globex) == {"eve@example.com": "owner"}


REMOVE_CASES = [
    ("owner", "admin", 204, None),
    ("owner", "olga", 204, None),
    ("admin", "member", 204, None),
    ("admin", "billing", 204, None),
    ("admin", "adam", 204, None),
    ("admin", "owner", 403, "role_escalation"),
    ("member", "billing", 403, "permission_denied"),
    ("billing", "member", 403, "permission_denied"),
    ("outsider", "member", 404, "not_found"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("actor", "target", "status", "code"), REMOVE_CASES)
def test_remove_rules(acme, globex, personas, olga, adam, actor, target, status, code):
    people = {**personas, "olga": olga, "adam": adam}
    target_user = people[target].user
    before = roles(acme)
    r = people[actor].api.delete(f"{MEMBERS}/{target_user.uid}")
    assert r.status_code == status, r.content
    if status == 204:
        assert r.content == b""
        assert target_user.email not in roles(acme)
        action, actor_label, target_label, ip, _data = audit(acme)[-1]
        assert (action, actor_label, target_label, ip) == (
            "member.removed",
            people[actor].user.email,
            target_user.email,
            "127.0.0.1",
        )
    else:
        assert r.json()["code"] == code
        assert roles(acme) == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "member", "billing"])
def test_any_member_may_leave(acme, personas, role):
    leaver = personas[role]
    assert leaver.api.delete(f"{MEMBERS}/{leaver.user.uid}").status_code == 204
    assert leaver.user.email not in roles(acme)
    assert audit(acme)[-1][4] == {"role": role, "left": True}
    assert leaver.api.get("/api/v1/organizations/acme").status_code == 404


@pytest.mark.django_db
def test_the_last_owner_cannot_leave_or_be_removed(acme, alice):
    r = alice.api.delete(f"{MEMBERS}/{alice.user.uid}")
    assert r.status_code == 403
    assert r.json()["code"] == "last_owner"
    assert roles(acme)["alice@example.com"] == "owner"


@pytest.mark.django_db
def test_removed_member_token_is_refused_at_once(acme, alice, carol):
    assert carol.api.get("/api/v1/organizations/acme/agents").status_code == 200  # warm every cache
    assert alice.api.delete(f"{MEMBERS}/{carol.user.uid}").status_code == 204
    for path in ("/api/v1/organizations/acme", "/api/v1/organizations/acme/agents", MEMBERS):
        r = carol.api.get(path)
        assert r.status_code == 404
        assert r.json()["code"] == "not_found"
    assert carol.api.get("/api/v1/me/organizations").json()["items"] == []


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_an_owner(tenant_template):
    a = make_persona("a@example.com", "A")
    b = make_persona("b@example.com", "B")
    organization = make_org(a.user, "duel")
    Membership.objects.create(organization=organization, user=b.user, role=Role.OWNER)
    barrier = threading.Barrier(2)
    outcomes = []

    def demote(actor, target):
        try:
            barrier.wait()
            membership_change_role(
                access=Access.for_user(actor, organization=organization, role=Role.OWNER),
                user_id=target.id,
                role=Role.ADMIN,
            )
            outcomes.append("ok")
        except errors.ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(a.user, b.user)),
        threading.Thread(target=demote, args=(b.user, a.user)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["ok", "role_escalation"]
        assert list(roles(organization).values()).count("owner") == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{organization.schema_name}" CASCADE')
