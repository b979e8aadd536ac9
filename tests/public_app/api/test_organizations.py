import threading

import dramatiq
import pytest
from django.db import connection
from dramatiq import Message

from public_app import errors
from public_app.models import Membership, Organization, OrganizationStatus, Role
from public_app.services.organizations import organization_create
from tests.conftest import make_persona

ORGS = "/api/v1/organizations"


@pytest.mark.django_db
def test_create_returns_202_provisioning_and_makes_caller_owner(alice, django_capture_on_commit_callbacks):
    broker = dramatiq.get_broker()
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        r = alice.api.post(ORGS, {"name": "Initech", "slug": "initech"})
    assert r.status_code == 202
    organization = Organization.objects.get(slug="initech")
    assert r.json() == {"id": organization.uid, "slug": "initech", "name": "Initech", "status": "provisioning"}
    assert Membership.objects.get(organization=organization).role == Role.OWNER
    assert organization.schema_name == "t_" + organization.uid.removeprefix("org_")
    # the provisioning job is enqueued, after commit, with the organization's id
    (message,) = [Message.decode(m) for m in broker.client.hvals(f"{broker.namespace}:provisioning.msgs")]
    assert (message.actor_name, message.args) == ("provision_organization", (organization.id,))
    broker.flush_all()


@pytest.mark.django_db
def test_schema_name_does_not_depend_on_the_slug(alice):
    a = organization_create(user=alice.user, name="A", slug="same-name")
    assert "same" not in a.schema_name


@pytest.mark.django_db
@pytest.mark.parametrize(
    "slug",
    ["ab", "a" * 49, "1abc", "-abc", "abc-", "ab--cd", "Abc", "ab_cd", "ab.cd", "api", "admin", "public", "www",
     "static", "media", "new", "settings", "pgsomething", "pg-admin", "abc\x00d", "ábc"],
)  # fmt: skip
def test_invalid_slugs_are_422_and_create_nothing(alice, slug):
    r = alice.api.post(ORGS, {"name": "X", "slug": slug})
    assert r.status_code == 422, slug
    assert r.json()["code"] == "validation_error"
    assert r.json()["details"][0]["field"] == "slug"
    assert Organization.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["abc", "a" * 48, "acme-corp-2", "a1b", "x-y-z"])
def test_valid_slugs_are_accepted(alice, slug):
    assert alice.api.post(ORGS, {"name": "X", "slug": slug}).status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_invalid_names_are_422(alice, name):
    r = alice.api.post(ORGS, {"name": name, "slug": "valid-slug"})
    assert r.status_code == 422
    assert Organization.objects.count() == 0


@pytest.mark.django_db
def test_taken_slug_is_409(alice, bob):
    alice.api.post(ORGS, {"name": "A", "slug": "taken"})
    r = bob.api.post(ORGS, {"name": "B", "slug": "taken"})
    assert r.status_code == 409
    assert r.json() == {"code": "slug_taken", "message": "This slug is already taken.", "details": None}
    assert Organization.objects.count() == 1
    assert not Membership.objects.filter(user=bob.user).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_slug_exactly_one_wins():
    users = [make_persona(f"racer{i}@example.com", f"Racer {i}").user for i in range(6)]
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def create(user):
        try:
            barrier.wait()
            organization_create(user=user, name="Race", slug="race")
            outcomes.append("created")
        except errors.Conflict as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["slug_taken"] * 5
    assert Organization.objects.filter(slug="race").count() == 1
    assert Membership.objects.count() == 1


@pytest.mark.django_db
def test_get_organization_for_every_member_role(acme, personas):
    for role in ("owner", "admin", "member", "billing"):
        r = personas[role].api.get(f"{ORGS}/acme")
        assert r.status_code == 200, role
        body = r.json()
        assert body["id"] == acme.uid
        assert body["slug"] == "acme"
        assert body["status"] == "active"
        assert body["plan"] == "free"
        assert body["role"] == role
        assert set(body) >= {"id", "slug", "name", "status", "logo_url", "website", "billing_email", "timezone",
                             "created_at", "plan"}  # fmt: skip


@pytest.mark.django_db
def test_non_member_and_unknown_slug_get_the_same_404(acme, globex, eve):
    not_member = eve.api.get(f"{ORGS}/acme")
    unknown = eve.api.get(f"{ORGS}/does-not-exist")
    assert not_member.status_code == unknown.status_code == 404
    assert (
        not_member.json()
        == unknown.json()
        == {
            "code": "not_found",
            "message": "Organization not found.",
            "details": None,
        }
    )


@pytest.mark.django_db
def test_anonymous_gets_401_not_404(acme, api):
    assert api.get(f"{ORGS}/acme").status_code == 401


@pytest.mark.django_db
def test_org_scoped_calls_are_503_until_active(alice):
    organization_create(user=alice.user, name="Slow", slug="slow")
    assert alice.api.get(f"{ORGS}/slow").json()["status"] == "provisioning"
    r = alice.api.get(f"{ORGS}/slow/agents")
    assert r.status_code == 503
    assert r.json()["code"] == "organization_provisioning"
    Organization.objects.filter(slug="slow").update(status=OrganizationStatus.FAILED)
    assert alice.api.get(f"{ORGS}/slow/agents").status_code == 503


@pytest.mark.django_db
def test_non_member_gets_404_not_503_for_a_provisioning_org(alice, eve):
    organization_create(user=alice.user, name="Slow", slug="slow")
    assert eve.api.get(f"{ORGS}/slow/agents").status_code == 404
