"""Billing against a Stripe-compatible server on 127.0.0.1 driven by the real stripe-python client."""

import json
import threading

import pytest
from django.db import connection

from public_app.access import Access
from public_app.clients import stripe_api
from public_app.models import BillingAccount, Membership, Organization, Role, StripeEvent
from public_app.services.billing import checkout as billing_checkout
from public_app.services.billing import seats as billing_seats
from public_app.services.members import membership_add
from tests.conftest import STRIPE_WEBHOOK_SECRET, make_org, make_persona, wait_for_jobs

ORG = "/api/v1/organizations/acme"
HOOK = "/api/v1/billing/stripe/webhook"


def send_event(api, fake, event: dict, secret: str = STRIPE_WEBHOOK_SECRET):
    payload = json.dumps(event).encode()
    return api.post(HOOK, raw=payload, token=None, **{"Stripe-Signature": fake.sign(payload, secret)})


def checkout(persona, slug="acme", plan="team"):
    r = persona.api.post(
        f"/api/v1/organizations/{slug}/billing/checkout",
        {"plan": plan, "success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"},
    )
    assert r.status_code == 200, r.content
    return r.json()["url"].rsplit("/", 1)[1]


@pytest.mark.django_db
def test_plans_need_no_auth(api):
    r = api.get("/api/v1/plans", token=None)
    assert r.status_code == 200
    assert r.json()["items"] == [
        {"code": "free", "name": "Free", "price_per_seat": 0, "currency": "usd", "interval": "month", "max_seats": 5},
        {"code": "team", "name": "Team", "price_per_seat": 1500, "currency": "usd", "interval": "month",
         "max_seats": 50},
        {"code": "business", "name": "Business", "price_per_seat": 4000, "currency": "usd", "interval": "month",
         "max_seats": None},
    ]  # fmt: skip


@pytest.mark.django_db
def test_customer_creation_is_idempotent_under_retry(acme, fake_stripe):
    first = stripe_api.customer_create(organization_uid=acme.uid, name="Acme", email=None)
    # a retry after a crash that lost the answer: same key, same customer, nothing new in Stripe
    second = stripe_api.customer_create(organization_uid=acme.uid, name="Acme", email=None)
    assert first == second
    assert list(fake_stripe.customers) == [first]
    assert fake_stripe.customers[first]["metadata"] == {"organization_id": acme.uid}
    assert billing_checkout.customer_ensure(organization=acme) == first
    assert billing_checkout.customer_ensure(organization=acme) == first
    assert len(fake_stripe.customers) == 1


def test_a_customer_is_created_by_a_job_once_the_organization_is_active(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    owner.api.post("/api/v1/organizations", {"name": "Paying", "slug": "paying"})
    wait_for_jobs(worker)
    organization = Organization.objects.get(slug="paying")
    account = BillingAccount.objects.get(organization=organization)
    assert account.stripe_customer_id in fake_stripe.customers
    creates = [r for r in fake_stripe.requests if r["path"] == "/v1/customers"]
    assert [r["idempotency_key"] for r in creates] == [f"customer-create-{organization.uid}"]


@pytest.mark.django_db
def test_checkout_carries_plan_seats_and_organization(acme, alice, fake_stripe):
    session_id = checkout(alice)
    params = fake_stripe.checkout_sessions[session_id]["params"]
    assert params["mode"] == "subscription"
    assert params["line_items[0][price]"] == "price_team_test"
    assert params["line_items[0][quantity]"] == "4"  # the current members
    assert params["client_reference_id"] == acme.uid
    assert params["customer"] == BillingAccount.objects.get(organization=acme).stripe_customer_id
    assert (params["success_url"], params["cancel_url"]) == ("https://app.example/ok", "https://app.example/cancel")
    assert params["metadata[organization_id]"] == acme.uid


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"plan": "free", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"},
        {"plan": "platinum", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"},
        {"plan": "team", "success_url": "javascript:alert(1)", "cancel_url": "https://a.example/no"},
        {"plan": "team", "success_url": "https://a.example/ok"},
    ],
)
def test_invalid_checkout_is_422(acme, alice, fake_stripe, payload):
    assert alice.api.post(f"{ORG}/billing/checkout", payload).status_code == 422
    assert fake_stripe.checkout_sessions == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "view", "manage"),
    [("owner", 200, 200), ("admin", 200, 403), ("billing", 200, 200), ("member", 403, 403), ("outsider", 404, 404)],
)
def test_billing_roles(acme, globex, personas, fake_stripe, persona, view, manage):
    api = personas[persona].api
    assert api.get(f"{ORG}/billing").status_code == view
    assert api.get(f"{ORG}/billing/invoices").status_code == view
    assert api.post(f"{ORG}/billing/portal", {"return_url": "https://app.example/billing"}).status_code == manage
    r = api.post(f"{ORG}/billing/checkout", {"plan": "team", "success_url": "https://a.example/1",
                                             "cancel_url": "https://a.example/2"})  # fmt: skip
    assert r.status_code == manage


@pytest.mark.django_db
def test_portal_session(acme, alice, fake_stripe):
    r = alice.api.post(f"{ORG}/billing/portal", {"return_url": "https://app.example/billing"})
    customer = BillingAccount.objects.get(organization=acme).stripe_customer_id
    assert r.json() == {"url": f"https://billing.stripe.test/p/{customer}"}
    (portal,) = [q for q in fake_stripe.requests if q["path"] == "/v1/billing_portal/sessions"]
    assert portal["params"] == {"customer": customer, "return_url": "https://app.example/billing"}


@pytest.mark.django_db
def test_billing_when_stripe_is_down_is_502(acme, alice, fake_stripe):
    fake_stripe.fail_next = 10
    r = alice.api.post(f"{ORG}/billing/portal", {"return_url": "https://app.example/billing"})
    assert (r.status_code, r.json()["code"]) == (502, "stripe_unavailable")


@pytest.mark.django_db
def test_webhook_signature_is_verified(api, fake_stripe):
    event = fake_stripe.event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"})
    payload = json.dumps(event).encode()
    for signature in (None, "t=1,v1=deadbeef", fake_stripe.sign(payload, "whsec_wrong"),
                      fake_stripe.sign(payload, STRIPE_WEBHOOK_SECRET, timestamp=1)):  # fmt: skip
        headers = {"Stripe-Signature": signature} if signature else {}
        r = api.post(HOOK, raw=payload, token=None, **headers)
        assert (r.status_code, r.json()["code"]) == (400, "invalid_signature")
    tampered = payload.replace(b"sub_x", b"sub_y")
    good = fake_stripe.sign(payload, STRIPE_WEBHOOK_SECRET)
    r = api.post(HOOK, raw=tampered, token=None, **{"Stripe-Signature": good})
    assert r.status_code == 400
    assert StripeEvent.objects.count() == 0


@pytest.mark.django_db
def test_each_event_id_is_stored_once_and_unknown_types_are_acknowledged(api, fake_stripe):
    event = fake_stripe.event("product.created", {"id": "prod_1", "object": "product"})
    assert send_event(api, fake_stripe, event).json() == {"received": True, "duplicate": False}
    assert send_event(api, fake_stripe, event).json() == {"received": True, "duplicate": True}
    assert StripeEvent.objects.count() == 1


def _subscribe(owner, fake, worker, slug):
    session_id = checkout(owner, slug)
    event = fake.complete_checkout(session_id)
    assert send_event(owner.api, fake, event).status_code == 200
    wait_for_jobs(worker)
    return event["data"]["object"]["subscription"]


def test_checkout_completed_then_seats_follow_accept_and_remove(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    organization = make_org(owner.user, "seats")
    subscription_id = _subscribe(owner, fake_stripe, worker, "seats")
    state = owner.api.get("/api/v1/organizations/seats/billing").json()
    assert state | {"current_period_end": None} == {
        "plan": "team", "status": "active", "seats_used": 1, "seats_billed": 1, "max_seats": 50,
        "current_period_end": None, "cancel_at_period_end": False,
        "payment_method": {"brand": "visa", "last4": "4242"},
    }  # fmt: skip
    assert state["current_period_end"]

    from public_app.models import Invitation
    from public_app.services.invitations import invitation_token

    uid = owner.api.post("/api/v1/organizations/seats/invitations", {"email": "j@example.com", "role": "member"})
    joiner = make_persona("j@example.com", "J")
    joiner.api.post(f"/api/v1/invitations/{invitation_token(Invitation.objects.get(uid=uid.json()['id']))}/accept")
    wait_for_jobs(worker)
    assert owner.api.get("/api/v1/organizations/seats/billing").json()["seats_billed"] == 2
    joiner.api.delete(f"/api/v1/organizations/seats/members/{joiner.user.uid}")  # leaving counts too
    wait_for_jobs(worker)
    assert owner.api.get("/api/v1/organizations/seats/billing").json()["seats_billed"] == 1
    item = fake_stripe.subscriptions[subscription_id]["items"]["data"][0]
    assert [u["quantity"] for u in fake_stripe.quantity_updates] == [2, 1]
    assert all(u["proration_behavior"] == "create_prorations" for u in fake_stripe.quantity_updates)
    keys = [r["idempotency_key"] for r in fake_stripe.requests if r["path"].startswith("/v1/subscription_items")]
    assert keys == [f"seats-{item['id']}-2-v1", f"seats-{item['id']}-1-v2"]
    assert organization.id


def test_a_burst_of_50_membership_changes_ends_in_one_or_two_stripe_calls(worker, fake_stripe, settings):
    settings.BILLING_SEAT_SYNC_DELAY_MS = 3000  # the coalescing window; generous so a slow machine still fits the burst
    owner = make_persona("owner@example.com", "Owner")
    organization = make_org(owner.user, "burst")
    _subscribe(owner, fake_stripe, worker, "burst")
    people = [make_persona(f"p{i}@example.com", f"P{i}").user for i in range(49)]
    for user in people:  # 49 separate transactions, each enqueueing a seat sync after commit
        from django.db import transaction

        with transaction.atomic():
            membership_add(organization=organization, user=user, role=Role.MEMBER, access=Access.system())
    Membership.objects.filter(organization=organization, user=people[0]).delete()  # a removal in the burst
    from public_app.services.billing.seats import seats_sync_request

    with transaction.atomic():
        seats_sync_request(organization=organization)
    wait_for_jobs(worker)
    assert 1 <= len(fake_stripe.quantity_updates) <= 2, fake_stripe.quantity_updates
    assert fake_stripe.quantity_updates[-1]["quantity"] == 49
    assert BillingAccount.objects.get(organization=organization).seats_billed == 49


def test_a_change_after_the_sync_started_gets_a_trailing_run(worker, fake_stripe, settings):
    settings.BILLING_SEAT_SYNC_DELAY_MS = 0
    owner = make_persona("owner@example.com", "Owner")
    organization = make_org(owner.user, "trail")
    _subscribe(owner, fake_stripe, worker, "trail")
    from django.db import transaction

    for i in range(3):
        with transaction.atomic():
            membership_add(organization=organization, user=make_persona(f"t{i}@example.com", "T").user,
                           role=Role.MEMBER, access=Access.system())  # fmt: skip
        wait_for_jobs(worker)
    assert BillingAccount.objects.get(organization=organization).seats_billed == 4
    assert fake_stripe.quantity_updates[-1]["quantity"] == 4


def test_a_failed_seat_push_is_retried_with_the_same_idempotency_key(transactional_db, tenant_template, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    organization = make_org(owner.user, "retry-seats")
    try:
        BillingAccount.objects.create(
            organization=organization, stripe_customer_id="cus_1", stripe_subscription_id="sub_1",
            stripe_subscription_item_id="si_1", seats_billed=0, subscription_status="active",
        )  # fmt: skip
        item = {"id": "si_1", "object": "subscription_item", "quantity": 0, "price": {"id": "price_team_test"}}
        fake_stripe.subscriptions["sub_1"] = {"id": "sub_1", "object": "subscription",
                                              "items": {"object": "list", "data": [item]}}  # fmt: skip
        fake_stripe.fail_next = 3  # the client's own retries (2) and the first attempt all fail
        with pytest.raises(Exception):  # noqa: B017 - the job fails and Dramatiq retries it
            billing_seats.seats_sync(organization_id=organization.id)
        assert billing_seats.seats_sync(organization_id=organization.id) == 1
        keys = {r["idempotency_key"] for r in fake_stripe.requests if r["path"] == "/v1/subscription_items/si_1"}
        assert keys == {"seats-si_1-1-v1"}
        assert [u["quantity"] for u in fake_stripe.quantity_updates] == [1]
        assert billing_seats.seats_sync(organization_id=organization.id) is None  # nothing left to do
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{organization.schema_name}" CASCADE')


def test_duplicate_and_out_of_order_events_never_regress_state(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "order")
    subscription_id = _subscribe(owner, fake_stripe, worker, "order")
    stale_active = fake_stripe.event("customer.subscription.updated", fake_stripe.subscriptions[subscription_id])
    canceled = fake_stripe.set_subscription_status(subscription_id, "canceled")
    send_event(owner.api, fake_stripe, canceled)
    send_event(owner.api, fake_stripe, canceled)  # again
    send_event(owner.api, fake_stripe, stale_active)  # late: it says "active", but Stripe now says canceled
    wait_for_jobs(worker)
    state = owner.api.get("/api/v1/organizations/order/billing").json()
    assert (state["status"], state["plan"], state["max_seats"]) == ("canceled", "free", 5)
    assert StripeEvent.objects.filter(type="customer.subscription.deleted").count() == 1


def test_past_due_keeps_the_plan_and_unpaid_falls_back_to_free(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "lapse")
    subscription_id = _subscribe(owner, fake_stripe, worker, "lapse")
    send_event(owner.api, fake_stripe, fake_stripe.set_subscription_status(subscription_id, "past_due"))
    wait_for_jobs(worker)
    assert owner.api.get("/api/v1/organizations/lapse/billing").json()["plan"] == "team"
    send_event(owner.api, fake_stripe, fake_stripe.set_subscription_status(subscription_id, "unpaid"))
    wait_for_jobs(worker)
    state = owner.api.get("/api/v1/organizations/lapse/billing").json()
    assert (state["status"], state["plan"]) == ("unpaid", "free")
    assert owner.api.get("/api/v1/organizations/lapse/agents").status_code == 200  # reading (and more) still works
    actions = [e["action"] for e in owner.api.get("/api/v1/organizations/lapse/audit-log").json()["items"]]
    assert actions.count("subscription.updated") == 3


def test_invoices_come_from_stripe_with_cursor_pagination(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "inv-org")
    wait_for_jobs(worker)
    customer = BillingAccount.objects.get(organization__slug="inv-org").stripe_customer_id
    for i in range(3):
        fake_stripe.invoices.append({"id": f"in_{i}", "object": "invoice", "customer": customer, "number": f"N-{i}",
                                     "status": "paid", "amount_due": 1500, "currency": "usd", "created": 1700000000 + i,
                                     "hosted_invoice_url": f"https://inv.example/{i}",
                                     "invoice_pdf": f"https://inv.example/{i}.pdf"})  # fmt: skip
    first = owner.api.get("/api/v1/organizations/inv-org/billing/invoices?limit=2").json()
    assert [i["id"] for i in first["items"]] == ["in_0", "in_1"]
    assert first["items"][0]["pdf_url"] == "https://inv.example/0.pdf"
    second = owner.api.get(f"/api/v1/organizations/inv-org/billing/invoices?limit=2&cursor={first['next_cursor']}")
    assert [i["id"] for i in second.json()["items"]] == ["in_2"]
    assert second.json()["next_cursor"] is None
    assert owner.api.get("/api/v1/organizations/inv-org/billing/invoices?cursor=bad").status_code == 422


def test_deleting_an_organization_sets_its_subscription_to_cancel(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "leaving")
    subscription_id = _subscribe(owner, fake_stripe, worker, "leaving")
    owner.api.delete("/api/v1/organizations/leaving")
    wait_for_jobs(worker)
    assert fake_stripe.subscriptions[subscription_id]["cancel_at_period_end"] is True
    owner.api.post("/api/v1/organizations/leaving/restore")
    wait_for_jobs(worker)
    assert fake_stripe.subscriptions[subscription_id]["cancel_at_period_end"] is False


def test_concurrent_webhook_deliveries_of_one_event_store_it_once(transactional_db, fake_stripe):
    from tests.conftest import Api

    event = fake_stripe.event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_unknown"})
    payload = json.dumps(event).encode()
    signature = fake_stripe.sign(payload, STRIPE_WEBHOOK_SECRET)
    barrier = threading.Barrier(4)
    statuses = []

    def deliver():
        barrier.wait()
        statuses.append(Api().post(HOOK, raw=payload, token=None, **{"Stripe-Signature": signature}).status_code)
        connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    assert StripeEvent.objects.count() == 1
