"""Webhook endpoints and signed deliveries, against a real HTTP receiver on 127.0.0.1 and a real worker."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from public_app.models import Organization
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tenant_apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenant_apps.webhooks.services.deliveries import delivery_attempt
from tests.conftest import Api, make_org, make_persona, wait_for_jobs

HOOKS = "/api/v1/organizations/acme/webhooks"


def verify_signature(secret: str, headers: dict, body: bytes) -> bool:
    """An independent Standard Webhooks verification (not the library we sign with)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig.split(",", 1)[1] == expected for sig in headers["webhook-signature"].split(" "))


def create_hook(api, url, events=("member.added",), slug="acme"):
    r = api.post(f"/api/v1/organizations/{slug}/webhooks", {"url": url, "events": list(events)})
    assert r.status_code == 201, r.content
    return r.json()


@pytest.mark.django_db
def test_create_shows_the_secret_once_and_stores_it_encrypted(acme, alice, receiver):
    body = create_hook(alice.api, receiver.url, ["member.added", "ping"])
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["member.added", "ping"]
    with tenant_context(acme):
        stored = WebhookEndpoint.objects.get()
        assert body["secret"] not in stored.secret_encrypted
        assert list(AuditEntry.objects.values_list("action", flat=True)) == ["webhook.created"]
    assert "secret" not in alice.api.get(f"{HOOKS}/{body['id']}").json()
    assert [h["id"] for h in alice.api.get(HOOKS).json()["items"]] == [body["id"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"url": "http://127.0.0.1:9/x", "events": []}, "validation_error"),
        ({"url": "http://127.0.0.1:9/x", "events": ["member.exploded"]}, "validation_error"),
        ({"url": "ftp://127.0.0.1/x", "events": ["ping"]}, "validation_error"),
        ({"url": "http://user:pw@127.0.0.1/x", "events": ["ping"]}, "validation_error"),
        ({"url": "not a url", "events": ["ping"]}, "validation_error"),
        ({"events": ["ping"]}, "validation_error"),
    ],
)
def test_invalid_endpoints_are_422(acme, alice, receiver, payload, code):
    r = alice.api.post(HOOKS, payload)
    assert r.status_code == 422
    assert r.json()["code"] == code
    with tenant_context(acme):
        assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_https_is_required_in_production(acme, alice, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert alice.api.post(HOOKS, {"url": "http://127.0.0.1/x", "events": ["ping"]}).status_code == 422


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
     "http://localhost:8000/x", "http://192.168.1.10/x", "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x",
     "http://100.64.0.1/x"],
)  # fmt: skip
def test_internal_targets_are_refused_unless_allowed(acme, alice, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    r = alice.api.post(HOOKS, {"url": url, "events": ["ping"]})
    assert r.status_code == 422
    assert r.json()["code"] == "webhook_url_forbidden"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "status"), [("owner", 201), ("admin", 201), ("member", 403), ("billing", 403), ("outsider", 404)]
)
def test_who_may_manage_webhooks(acme, globex, personas, receiver, persona, status):
    r = personas[persona].api.post(HOOKS, {"url": receiver.url, "events": ["ping"]})
    assert r.status_code == status


@pytest.mark.django_db
def test_an_admin_api_key_may_manage_webhooks(acme, alice, receiver):
    key = alice.api.post("/api/v1/organizations/acme/api-keys", {"name": "ci", "role": "admin"}).json()["key"]
    assert Api(key).post(HOOKS, {"url": receiver.url, "events": ["ping"]}).status_code == 201


@pytest.mark.django_db
def test_endpoints_of_another_organization_are_invisible(acme, globex, alice, eve, receiver):
    foreign = create_hook(eve.api, receiver.url, slug="globex")
    assert alice.api.get(HOOKS).json()["items"] == []
    assert alice.api.get(f"{HOOKS}/{foreign['id']}").status_code == 404
    assert alice.api.patch(f"{HOOKS}/{foreign['id']}", {"description": "mine now"}).status_code == 404
    assert alice.api.delete(f"{HOOKS}/{foreign['id']}").status_code == 404
    assert alice.api.get(f"{HOOKS}/{foreign['id']}/deliveries").status_code == 404
    assert alice.api.post(f"{HOOKS}/{foreign['id']}/test").status_code == 404


@pytest.mark.django_db
def test_update_and_delete(acme, alice, receiver):
    hook = create_hook(alice.api, receiver.url)
    r = alice.api.patch(f"{HOOKS}/{hook['id']}", {"events": ["member.removed", "ping"], "description": "ops"})
    assert r.status_code == 200
    assert r.json()["events"] == ["member.removed", "ping"]
    assert r.json()["description"] == "ops"
    assert alice.api.patch(f"{HOOKS}/{hook['id']}", {"events": []}).status_code == 422
    assert alice.api.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert alice.api.get(f"{HOOKS}/{hook['id']}").status_code == 404
    with tenant_context(acme):
        assert list(AuditEntry.objects.values_list("action", flat=True)) == [
            "webhook.created", "webhook.updated", "webhook.deleted"
        ]  # fmt: skip


def _org_with_member_hook(receiver, events=("member.added",)):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "hooked")
    hook = create_hook(owner.api, receiver.url, events, slug="hooked")
    return owner, hook


def _invite_and_accept(owner, email="joiner@example.com"):
    from public_app.models import Invitation
    from public_app.services.invitations import invitation_token

    uid = owner.api.post("/api/v1/organizations/hooked/invitations", {"email": email, "role": "member"}).json()["id"]
    joiner = make_persona(email, "Joiner")
    token = invitation_token(Invitation.objects.get(uid=uid))
    assert joiner.api.post(f"/api/v1/invitations/{token}/accept").status_code == 200
    return joiner


def test_member_added_arrives_signed(worker, receiver):
    owner, hook = _org_with_member_hook(receiver)
    joiner = _invite_and_accept(owner)
    wait_for_jobs(worker)
    (request,) = receiver.wait_for(1)
    headers, body = request["headers"], request["body"]
    assert verify_signature(hook["secret"], headers, body)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    payload = json.loads(body)
    organization = Organization.objects.get(slug="hooked")
    assert payload["type"] == "member.added"
    assert payload["id"] == headers["webhook-id"] and payload["id"].startswith("evt_")
    assert payload["organization"] == {"id": organization.uid, "slug": "hooked"}
    assert payload["data"] == {"user": {"id": joiner.user.uid, "email": "joiner@example.com"}, "role": "member"}
    deliveries = owner.api.get(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/deliveries").json()["items"]
    assert [(d["event"], d["status"], d["attempts"], d["response_status"]) for d in deliveries] == [
        ("member.added", "succeeded", 1, 200)
    ]


def test_failing_twice_then_succeeding_is_three_attempts_with_one_webhook_id(worker, receiver):
    receiver.script = [500, 503]
    owner, hook = _org_with_member_hook(receiver)
    _invite_and_accept(owner)
    requests = receiver.wait_for(3)
    wait_for_jobs(worker)
    assert len(requests) == 3
    assert len({r["headers"]["webhook-id"] for r in requests}) == 1
    assert all(verify_signature(hook["secret"], r["headers"], r["body"]) for r in requests)
    (delivery,) = owner.api.get(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == ("succeeded", 3, 200)
    with tenant_context(Organization.objects.get(slug="hooked")):
        statuses = list(WebhookAttempt.objects.order_by("number").values_list("number", "response_status"))
    assert statuses == [(1, 500), (2, 503), (3, 200)]


def test_redirects_are_not_followed_and_exhausted_retries_fail(worker, receiver):
    receiver.script = [302, 500, 500, 500]
    owner, hook = _org_with_member_hook(receiver)
    _invite_and_accept(owner)
    receiver.wait_for(4)
    wait_for_jobs(worker)
    time.sleep(0.3)
    assert len(receiver.requests) == 4  # no request to the redirect target, no fifth attempt
    (delivery,) = owner.api.get(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("failed", 4, None)


def test_an_endpoint_failing_for_too_long_is_disabled_and_owners_are_emailed(worker, receiver, mailbox, settings):
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0.2]
    receiver.script = [500] * 10
    owner, hook = _org_with_member_hook(receiver)
    _invite_and_accept(owner)
    receiver.wait_for(2)
    wait_for_jobs(worker)
    got = owner.api.get(f"/api/v1/organizations/hooked/webhooks/{hook['id']}").json()
    assert got["enabled"] is False
    assert got["disabled_reason"]
    disabled = [m for m in mailbox if "webhook endpoint" in m["Subject"]]
    assert [m["To"] for m in disabled] == ["owner@example.com"]
    assert receiver.url in disabled[0].get_content()
    # re-enabling clears the failure state
    r = owner.api.patch(f"/api/v1/organizations/hooked/webhooks/{hook['id']}", {"enabled": True})
    assert r.json()["enabled"] is True


def test_ping_and_secret_rotation(worker, receiver):
    owner, hook = _org_with_member_hook(receiver, ["member.added"])
    assert owner.api.post(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/test").status_code == 202
    rotated = owner.api.post(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/rotate-secret").json()
    assert rotated["secret"] != hook["secret"]
    wait_for_jobs(worker)
    owner.api.post(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/test")
    wait_for_jobs(worker)
    first, second = receiver.wait_for(2)
    assert json.loads(first["body"])["type"] == "ping"
    assert verify_signature(rotated["secret"], second["headers"], second["body"])
    assert not verify_signature(hook["secret"], second["headers"], second["body"])


def test_events_go_only_to_subscribed_endpoints_of_the_same_organization(worker, receiver):
    owner, _hook = _org_with_member_hook(receiver, ["member.removed"])
    other_owner = make_persona("other@example.com", "Other")
    make_org(other_owner.user, "other-org")
    create_hook(other_owner.api, receiver.url, ["member.added"], slug="other-org")
    _invite_and_accept(owner)
    wait_for_jobs(worker)
    time.sleep(0.2)
    assert receiver.requests == []


def test_a_delivery_is_not_sent_twice(worker, receiver):
    owner, hook = _org_with_member_hook(receiver, ["ping"])
    owner.api.post(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/test")
    wait_for_jobs(worker)
    receiver.wait_for(1)
    organization = Organization.objects.get(slug="hooked")
    with tenant_context(organization):
        delivery = WebhookDelivery.objects.get()
        assert delivery_attempt(organization=organization, delivery_id=delivery.id) is None
    assert len(receiver.requests) == 1


def test_delivery_time_guard_refuses_internal_targets(worker, receiver, settings):
    owner, hook = _org_with_member_hook(receiver, ["ping"])
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # e.g. the name now resolves somewhere internal
    settings.WEBHOOK_RETRY_SCHEDULE = [0]
    owner.api.post(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/test")
    wait_for_jobs(worker)
    assert receiver.requests == []
    (delivery,) = owner.api.get(f"/api/v1/organizations/hooked/webhooks/{hook['id']}/deliveries").json()["items"]
    assert delivery["status"] == "failed"
    assert "forbidden target" in delivery["last_error"]
