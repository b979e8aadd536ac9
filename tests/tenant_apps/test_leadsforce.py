"""Settings → Leadsforce against a fake Leadsforce server on 127.0.0.1 speaking docs/leadsforce.md."""

import re

import pytest
from cryptography.fernet import Fernet

from public_app.crypto import decrypt
from public_app.models import Organization
from public_app.tenancy import tenant_context
from tenant_apps.integrations.models import Integration
from tenant_apps.integrations.services import leadsforce_sync
from tenant_apps.leads.models import Lead
from tenant_apps.webhooks.models import WebhookDelivery
from tests.conftest import make_org, make_persona, wait_for_jobs

LF = "/api/v1/organizations/acme/integrations/leadsforce"


@pytest.mark.django_db
def test_status_when_not_connected(acme, alice):
    assert alice.api.get(LF).json() == {
        "connected": False, "account_name": None, "connected_at": None, "last_sync_at": None, "last_sync_error": None
    }  # fmt: skip


@pytest.mark.django_db
def test_connect_checks_the_key_then_stores_it_encrypted(acme, globex, alice, leadsforce):
    r = alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    assert r.status_code == 200
    assert r.json()["connected"] is True
    assert r.json()["account_name"] == "Acme Sales"
    assert "lf_good_key" not in r.content.decode()
    assert leadsforce.requests[-1] == ("/v1/account", "Bearer lf_good_key")
    with tenant_context(acme):
        stored = Integration.objects.get()
    assert "lf_good_key" not in stored.credentials_encrypted
    assert decrypt(stored.credentials_encrypted) == "lf_good_key"
    with pytest.raises(Exception):  # noqa: B017 - any key but ours fails
        Fernet(Fernet.generate_key()).decrypt(stored.credentials_encrypted.encode())
    assert alice.api.get(LF).json()["connected"] is True
    with tenant_context(globex):
        assert not Integration.objects.exists()


@pytest.mark.django_db
def test_a_refused_key_is_422_and_nothing_is_stored(acme, alice, leadsforce):
    r = alice.api.request("PUT", LF, {"api_key": "wrong"})
    assert r.status_code == 422
    assert r.json()["code"] == "leadsforce_rejected"
    with tenant_context(acme):
        assert not Integration.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("failure", [500, 503, 429])
def test_leadsforce_errors_are_502(acme, alice, leadsforce, failure):
    leadsforce.fail_with = failure
    r = alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    assert r.status_code == 502
    assert r.json()["code"] == "leadsforce_unavailable"


@pytest.mark.django_db
def test_unreachable_leadsforce_is_502(acme, alice, settings):
    settings.LEADSFORCE_API_URL = "http://127.0.0.1:1"
    r = alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    assert r.status_code == 502
    assert r.json()["code"] == "leadsforce_unavailable"


@pytest.mark.django_db
def test_not_configured_is_503(acme, alice, settings):
    settings.LEADSFORCE_API_URL = ""
    assert alice.api.request("PUT", LF, {"api_key": "k"}).json()["code"] == "leadsforce_not_configured"


@pytest.mark.django_db
@pytest.mark.parametrize(("persona", "status"), [("admin", 200), ("member", 403), ("billing", 403), ("outsider", 404)])
def test_who_may_manage_the_integration(acme, globex, personas, leadsforce, persona, status):
    assert personas[persona].api.request("PUT", LF, {"api_key": "lf_good_key"}).status_code == status


@pytest.mark.django_db
def test_disconnect(acme, alice, leadsforce):
    alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    assert alice.api.delete(LF).status_code == 204
    assert alice.api.get(LF).json()["connected"] is False
    assert alice.api.delete(LF).status_code == 404
    assert alice.api.post(f"{LF}/sync").json()["code"] == "integration_not_connected"


@pytest.mark.django_db
def test_sync_imports_every_page_once_and_is_idempotent(acme, alice, leadsforce):
    leadsforce.add_leads(250)
    leadsforce.leads[5]["phone"] = "not a phone"
    alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    with tenant_context(acme):
        assert leadsforce_sync(organization=acme) == 250
        assert leadsforce_sync(organization=acme) == 0  # run twice: same rows
        assert Lead.objects.filter(source="leadsforce").count() == 250
        assert Lead.objects.get(external_id="lf_5").phone == ""
        uids = set(Lead.objects.values_list("uid", flat=True))
        assert len(uids) == 250 and all(re.fullmatch(r"led_[0-9a-z]{26}", uid) for uid in uids)
        assert Integration.objects.get().last_sync_at is not None
    leadsforce.add_leads(10, start=250)
    leadsforce.leads[0]["first_name"] = "Renamed"
    with tenant_context(acme):
        assert leadsforce_sync(organization=acme) == 10
        assert Lead.objects.get(external_id="lf_0").first_name == "Renamed"
        assert Lead.objects.count() == 260
    pages = [path for path, _ in leadsforce.requests if path.startswith("/v1/leads")]
    assert len(pages) == 3 + 3 + 3


@pytest.mark.django_db
def test_sync_emits_lead_created_for_new_leads_only(acme, alice, leadsforce, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    alice.api.post("/api/v1/organizations/acme/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["lead.created"]})
    leadsforce.add_leads(3)
    alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    with tenant_context(acme):
        leadsforce_sync(organization=acme)
        leadsforce_sync(organization=acme)
        assert WebhookDelivery.objects.filter(event_type="lead.created").count() == 3


@pytest.mark.django_db
def test_a_revoked_key_stops_the_sync_and_records_why(acme, alice, leadsforce):
    leadsforce.add_leads(3)
    alice.api.request("PUT", LF, {"api_key": "lf_good_key"})
    leadsforce.keys.clear()
    with tenant_context(acme):
        assert leadsforce_sync(organization=acme) == 0
    assert "refused" in alice.api.get(LF).json()["last_sync_error"]


def test_sync_endpoint_runs_the_job_in_the_organizations_schema(worker, leadsforce):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "lf-org")
    other = make_org(make_persona("other@example.com", "Other").user, "other-org")
    leadsforce.add_leads(120)
    owner.api.request("PUT", "/api/v1/organizations/lf-org/integrations/leadsforce", {"api_key": "lf_good_key"})
    assert owner.api.post("/api/v1/organizations/lf-org/integrations/leadsforce/sync").status_code == 202
    wait_for_jobs(worker)
    leads = owner.api.get("/api/v1/organizations/lf-org/leads?source=leadsforce&limit=200").json()["items"]
    assert len(leads) == 120
    assert owner.api.get("/api/v1/organizations/lf-org/integrations/leadsforce").json()["last_sync_at"]
    with tenant_context(Organization.objects.get(id=other.id)):
        assert Lead.objects.count() == 0
