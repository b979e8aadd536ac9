"""Jobs whose message was lost (a broker restarted without persistence) are sent again from the database state."""

import json
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from jobs.maintenance import redrive_lost_jobs
from public_app.models import Invitation, Organization, StripeEvent
from public_app.tenancy import tenant_context
from tenant_apps.webhooks.models import WebhookDelivery
from tests.conftest import make_org, make_persona, wait_for_jobs


def test_lost_invitation_email_and_webhook_delivery_are_sent_again(worker, mailbox, receiver, monkeypatch):
    from public_app.services import invitations
    from tenant_apps.webhooks.services import events as webhook_events

    owner = make_persona("owner@example.com", "Owner")
    organization = make_org(owner.user, "lossy")
    owner.api.post("/api/v1/organizations/lossy/webhooks", {"url": receiver.url, "events": ["invitation.created"]})
    # the broker "loses" both messages
    monkeypatch.setattr(invitations, "_enqueue_email", lambda invitation: None)
    monkeypatch.setattr(webhook_events, "delivery_enqueue", lambda *args, **kwargs: None)
    r = owner.api.post("/api/v1/organizations/lossy/invitations", {"email": "g@example.com", "role": "member"})
    monkeypatch.undo()
    wait_for_jobs(worker)
    assert mailbox == [] and receiver.requests == []
    past = timezone.now() - timedelta(minutes=5)
    Invitation.objects.filter(uid=r.json()["id"]).update(updated_at=past)
    with tenant_context(organization):
        WebhookDelivery.objects.update(next_attempt_at=past)
    cache.delete("redrive-webhooks")
    redrive_lost_jobs.send()
    wait_for_jobs(worker)
    assert [m["To"] for m in mailbox] == ["g@example.com"]
    (request,) = receiver.wait_for(1)
    assert json.loads(request["body"])["type"] == "invitation.created"
    # a second pass finds nothing left to do
    cache.delete("redrive-webhooks")
    redrive_lost_jobs.send()
    wait_for_jobs(worker)
    assert len(mailbox) == 1 and len(receiver.requests) == 1


def test_a_lost_stripe_event_is_processed_again(worker, fake_stripe):
    owner = make_persona("owner@example.com", "Owner")
    make_org(owner.user, "stripe-lossy")
    wait_for_jobs(worker)
    organization = Organization.objects.get(slug="stripe-lossy")
    event = fake_stripe.event("invoice.paid", {"id": "in_1", "object": "invoice",
                                               "customer": organization.billing.stripe_customer_id})  # fmt: skip
    StripeEvent.objects.create(id=event["id"], type=event["type"], payload=event)  # stored, message lost
    StripeEvent.objects.filter(id=event["id"]).update(received_at=timezone.now() - timedelta(minutes=5))
    redrive_lost_jobs.send()
    wait_for_jobs(worker)
    assert StripeEvent.objects.get(id=event["id"]).processed_at is not None
