"""Verified domains (issue 20, item 2): claim, verify by a real DNS lookup against a local authoritative server,
policy (off, suggest, auto_join), suggestions and joins; role by role, with a second organization present."""

from collections.abc import Iterator
from typing import Any

import pytest

from public_app.models import Membership, OrganizationDomain, User
from public_app.services.verification import user_mark_verified
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tests.conftest import Api, make_persona
from tests.fakes.dns import DnsServer

DOMAINS = "/api/v1/organizations/acme/domains"


@pytest.fixture
def dns_server(settings: Any) -> Iterator[DnsServer]:
    server = DnsServer().start()
    settings.DNS_RESOLVER = server.address
    settings.DNS_TIMEOUT_SECONDS = 2
    yield server
    server.stop()


def verified(acme: Any, alice: Any, dns_server: DnsServer, domain: str = "acme-corp.io") -> dict:
    claimed = alice.api.post(DOMAINS, {"domain": domain}).json()
    dns_server.txt[claimed["record"]["name"]] = ["v=spf1 -all", claimed["record"]["value"]]
    response = alice.api.post(f"{DOMAINS}/{claimed['id']}/verify")
    assert response.status_code == 200, response.content
    return response.json()


def test_claim_then_verify_by_dns(acme, globex, alice, eve, dns_server):
    response = alice.api.post(DOMAINS, {"domain": "Acme-Corp.IO."})
    assert response.status_code == 201, response.content
    claimed = response.json()
    assert (claimed["domain"], claimed["status"], claimed["policy"]) == ("acme-corp.io", "pending", "off")
    assert claimed["record"]["type"] == "TXT" and claimed["record"]["name"] == "_orgs-verification.acme-corp.io"
    assert claimed["record"]["value"].startswith("orgs-verification=")
    # nothing published yet: 422 saying what the lookup saw, nothing changes
    refused = alice.api.post(f"{DOMAINS}/{claimed['id']}/verify")
    assert refused.status_code == 422 and refused.json()["code"] == "domain_not_verified"
    assert "does not exist" in refused.json()["message"]
    dns_server.txt["_orgs-verification.acme-corp.io"] = ["orgs-verification=wrong"]
    refused = alice.api.post(f"{DOMAINS}/{claimed['id']}/verify")
    assert refused.status_code == 422 and "none is" in refused.json()["message"]
    assert OrganizationDomain.objects.get(uid=claimed["id"]).verified_at is None
    dns_server.txt["_orgs-verification.acme-corp.io"] = ["other", claimed["record"]["value"]]
    done = alice.api.post(f"{DOMAINS}/{claimed['id']}/verify")
    assert done.status_code == 200 and done.json()["status"] == "verified"
    assert dns_server.queries.count("_orgs-verification.acme-corp.io") == 3  # real lookups, each time
    # globex cannot claim what acme verified, nor see acme's domains
    taken = eve.api.post("/api/v1/organizations/globex/domains", {"domain": "acme-corp.io"})
    assert taken.status_code == 409 and taken.json()["code"] == "domain_taken"
    assert eve.api.get(f"/api/v1/organizations/globex/domains/{claimed['id']}").status_code == 404
    assert eve.api.get("/api/v1/organizations/globex/domains").json()["items"] == []
    with tenant_context(acme):
        assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
            "domain.created", "domain.verified"]  # fmt: skip


@pytest.mark.parametrize(
    ("domain", "why"),
    [("co.uk", "public suffix"), ("github.io", "public suffix"), ("gmail.com", "free email"),
     ("mail.gmail.com", "free email"), ("not a domain", "valid"), ("localhost", "valid")],
)  # fmt: skip
def test_public_suffixes_and_free_mail_are_refused(acme, alice, domain, why):
    response = alice.api.post(DOMAINS, {"domain": domain})
    assert response.status_code == 422 and why in response.json()["details"][0]["message"]
    assert not OrganizationDomain.objects.exists()


@pytest.mark.parametrize(("persona", "status"), [("owner", 201), ("admin", 201), ("member", 403),
                                                  ("billing", 403), ("outsider", 404)])  # fmt: skip
def test_who_may_claim_a_domain(acme, globex, personas, persona, status):
    response = personas[persona].api.post(DOMAINS, {"domain": "acme-corp.io"})
    assert response.status_code == status
    assert OrganizationDomain.objects.filter(organization=acme).count() == (1 if status == 201 else 0)


def test_a_policy_needs_a_verified_domain_and_no_role_above_the_callers(acme, alice, bob, dns_server):
    claimed = alice.api.post(DOMAINS, {"domain": "acme-corp.io"}).json()
    refused = alice.api.patch(f"{DOMAINS}/{claimed['id']}", {"policy": "suggest"})
    assert refused.status_code == 409 and refused.json()["code"] == "domain_verification_required"
    dom = verified(acme, alice, dns_server, "acme-two.io")
    assert bob.api.patch(f"{DOMAINS}/{dom['id']}", {"default_role": "owner"}).status_code == 422
    assert alice.api.patch(f"{DOMAINS}/{dom['id']}", {"policy": "suggest", "default_role": "admin"}).json()[
        "policy"] == "suggest"  # fmt: skip


def test_suggest_lists_the_organization_to_verified_colleagues_who_join_in_one_call(acme, alice, dns_server):
    dom = verified(acme, alice, dns_server)
    alice.api.patch(f"{DOMAINS}/{dom['id']}", {"policy": "suggest"})
    colleague = make_persona("zoe@acme-corp.io", "Zoe")  # verified address at the domain
    stranger = make_persona("sam@elsewhere.io", "Sam")
    unverified = make_persona("uma@acme-corp.io", "Uma")
    User.objects.filter(id=unverified.user.id).update(email_verified_at=None)
    suggestions = colleague.api.get("/api/v1/me/suggestions").json()["items"]
    assert suggestions == [{"slug": "acme", "name": "Acme", "domain": "acme-corp.io", "role": "member",
                            "policy": "suggest"}]  # fmt: skip
    assert stranger.api.get("/api/v1/me/suggestions").json()["items"] == []
    assert unverified.api.get("/api/v1/me/suggestions").json()["items"] == []
    assert stranger.api.post("/api/v1/me/suggestions/acme/join").status_code == 404
    joined = colleague.api.post("/api/v1/me/suggestions/acme/join")
    assert joined.status_code == 201 and joined.json()["role"] == "member"
    assert colleague.api.get("/api/v1/organizations/acme").status_code == 200
    assert colleague.api.get("/api/v1/me/suggestions").json()["items"] == []  # a member now
    with tenant_context(acme):
        entry = AuditEntry.objects.filter(action="member.added").latest("id")
    assert entry.data["via"] == "domain"


def test_auto_join_adds_people_when_their_address_is_verified_seats_permitting(acme, alice, dns_server, settings):
    dom = verified(acme, alice, dns_server)
    alice.api.patch(f"{DOMAINS}/{dom['id']}", {"policy": "auto_join"})
    newcomer = User.objects.create_user("nina@acme-corp.io", "x" * 20, name="Nina")
    assert not Membership.objects.filter(user=newcomer).exists()  # not before the address is verified
    user_mark_verified(user=newcomer)
    assert Membership.objects.get(user=newcomer, organization=acme).role == "member"
    settings.FREE_PLAN_MAX_SEATS = Membership.objects.filter(organization=acme).count()
    late = User.objects.create_user("liam@acme-corp.io", "x" * 20, name="Liam")
    user_mark_verified(user=late)  # full: skipped, the verification itself succeeds
    assert late.email_verified_at is not None and not Membership.objects.filter(user=late).exists()


def test_a_lookup_that_fails_says_so_and_changes_nothing(acme, alice, settings):
    settings.DNS_RESOLVER = "127.0.0.1:9"  # nothing answers there
    settings.DNS_TIMEOUT_SECONDS = 1
    claimed = alice.api.post(DOMAINS, {"domain": "acme-corp.io"}).json()
    refused = alice.api.post(f"{DOMAINS}/{claimed['id']}/verify")
    assert refused.status_code == 422 and "lookup failed" in refused.json()["message"]
    assert OrganizationDomain.objects.get(uid=claimed["id"]).verified_at is None


def test_verification_attempts_are_rate_limited(acme, alice, dns_server, settings):
    settings.RATELIMIT_DOMAIN_VERIFICATIONS_PER_HOUR = 2
    claimed = alice.api.post(DOMAINS, {"domain": "acme-corp.io"}).json()
    codes = [alice.api.post(f"{DOMAINS}/{claimed['id']}/verify").status_code for _ in range(3)]
    assert codes == [422, 422, 429]


def test_deleting_a_domain_ends_suggestions(acme, alice, dns_server):
    dom = verified(acme, alice, dns_server)
    alice.api.patch(f"{DOMAINS}/{dom['id']}", {"policy": "suggest"})
    colleague = make_persona("zoe@acme-corp.io", "Zoe")
    assert colleague.api.get("/api/v1/me/suggestions").json()["items"]
    assert alice.api.delete(f"{DOMAINS}/{dom['id']}").status_code == 204
    assert colleague.api.get("/api/v1/me/suggestions").json()["items"] == []
    assert Api(None).get("/api/v1/me/suggestions").status_code == 401
