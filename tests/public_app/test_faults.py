"""Faults met inside one process (issue 13): the broker, the cache or the database failing under a request, and
a database connection dying between sending an email and recording it. Whole-service faults (killed processes,
restarted dependencies) are in test_fault_processes.py."""

import threading
from collections import Counter
from typing import Any

import dramatiq
import pytest
from django.db import connection

from public_app.models import Invitation, Membership, Organization, OutboxMessage
from tests.conftest import Api, wait_for_jobs

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def broker_down(monkeypatch: Any) -> Any:
    """The broker refuses every message (as a stopped Redis does), until `.restore()`."""
    broker = dramatiq.get_broker()
    real = broker.enqueue

    class Switch:
        def restore(self) -> None:
            monkeypatch.setattr(broker, "enqueue", real)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(broker, "enqueue", refuse)
    monkeypatch.setattr("public_app.outbox._breaker_until", 0.0)
    return Switch()


def test_writes_succeed_while_the_broker_is_down_and_their_jobs_run_once_it_is_back(
    worker, mailbox, alice, broker_down, settings
):
    """Finding 3: with the broker down, POST /organizations and POST …/invitations answered 500 although the rows
    were committed, and a client's retry then got 409."""
    from public_app.outbox import relay_all

    settings.OUTBOX_BREAKER_SECONDS = 0  # every request tries the broker (the worst case for latency and errors)
    created = alice.api.post("/api/v1/organizations", {"name": "Down", "slug": "down-co"})
    assert created.status_code == 202, created.content
    organization = Organization.objects.get(slug="down-co")
    assert organization.status == "provisioning"
    assert OutboxMessage.objects.filter(actor_name="provision_organization").count() == 1
    broker_down.restore()
    assert relay_all() >= 1  # what the scheduler's relay loop does every second
    wait_for_jobs(worker)
    organization.refresh_from_db()
    assert organization.status == "active"
    from public_app.outbox import _breaker_until  # noqa: F401 - the breaker closed again with the first success

    invited = []
    refuse = dramatiq.get_broker().enqueue

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("refused")

    dramatiq.get_broker().enqueue = down
    try:
        for i in range(4):  # the free plan's 5 seats: the owner and 4 invitations
            r = alice.api.post("/api/v1/organizations/down-co/invitations", {"email": f"i{i}@example.com",
                                                                             "role": "member"})  # fmt: skip
            assert r.status_code == 201, r.content
            invited.append(r.json()["id"])
    finally:
        dramatiq.get_broker().enqueue = refuse
    assert not mailbox
    assert relay_all() == 4
    wait_for_jobs(worker)
    assert sorted(m["To"] for m in mailbox) == sorted(f"i{i}@example.com" for i in range(4))
    assert not OutboxMessage.objects.exists()  # every job finished and took its row with it


def test_a_lost_message_is_sent_again_after_the_redelivery_interval(worker, alice, settings):
    """A broker restarted empty loses what it held; the outbox row stays until a worker finished the job."""
    from datetime import timedelta

    from django.utils import timezone

    from public_app.outbox import relay_all

    broker = dramatiq.get_broker()
    real = broker.enqueue
    broker.enqueue = lambda message, delay=None: message  # the broker takes the message, then loses it (restart)
    try:
        created = alice.api.post("/api/v1/organizations", {"name": "Lost", "slug": "lost-co"})
        assert created.status_code == 202
    finally:
        broker.enqueue = real
    row = OutboxMessage.objects.get(actor_name="provision_organization")
    assert row.relay_count == 1
    assert relay_all() == 0  # not due yet: a slow job is not a lost one
    OutboxMessage.objects.filter(id=row.id).update(redeliver_at=timezone.now() - timedelta(seconds=1))
    assert relay_all() == 1
    wait_for_jobs(worker)
    assert Organization.objects.get(slug="lost-co").status == "active"
    assert not OutboxMessage.objects.exists()


def test_every_request_path_survives_a_cache_outage(acme, alice, carol, settings):
    """Finding 5: membership_touch called cache.add unguarded, so every organization-scoped request of a user
    answered 500 while the cache was down."""
    settings.RATELIMIT_ENABLED = True  # rate limits and brute-force guards live in the cache too
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": DEAD_REDIS}}
    assert alice.api.get("/api/v1/me").status_code == 200
    assert alice.api.get("/api/v1/organizations/acme/members").status_code == 200
    assert alice.api.get("/api/v1/organizations/acme/agents").status_code == 200
    key = alice.api.post("/api/v1/organizations/acme/api-keys", {"name": "k", "role": "member"}).json()["key"]
    assert Api(key).get("/api/v1/organizations/acme/agents").status_code == 200
    r = alice.api.post("/api/v1/organizations/acme/invitations", {"email": "x@example.com", "role": "member"})
    assert r.status_code == 201, r.content
    login = Api().post("/api/v1/auth/login", {"email": "alice@example.com", "password": "correct-horse-battery-staple"})
    assert login.status_code == 200
    assert Api().post("/api/v1/auth/login", {"email": "alice@example.com", "password": "wrong"}).status_code == 401
    ready = Api().get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["cache"] == "down"


def test_access_removed_during_a_cache_outage_is_not_served_from_the_cache_afterwards(acme, alice, carol, settings):
    """An invalidation the outage swallowed must not let a stale cached membership grant access once the cache
    is back (the entry from before the outage is still in Redis)."""
    healthy = settings.CACHES
    assert carol.api.get("/api/v1/organizations/acme/agents").status_code == 200  # cached now
    settings.CACHES = {"default": {**healthy["default"], "LOCATION": DEAD_REDIS}}
    removed = alice.api.delete(f"/api/v1/organizations/acme/members/{carol.user.uid}")
    assert removed.status_code == 204
    settings.CACHES = healthy
    assert carol.api.get("/api/v1/organizations/acme/agents").status_code in (403, 404)
    assert not Membership.objects.filter(user=carol.user, organization=acme).exists()


def test_the_api_answers_503_with_retry_after_when_the_database_is_unreachable(transactional_db, alice, monkeypatch):
    import psycopg

    from config.db.base import DatabaseWrapper

    def unreachable(self: Any, conn_params: Any) -> Any:
        raise psycopg.OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    connection.close()
    with monkeypatch.context() as patched:
        patched.setattr(DatabaseWrapper, "get_new_connection", unreachable)
        _assert_all_503(alice)


def _assert_all_503(alice: Any) -> None:
    for method, path, body in [
        ("get", "/api/v1/organizations/acme/members", None),
        ("post", "/api/v1/organizations", {"name": "X", "slug": "x-co"}),
        ("post", "/api/v1/auth/login", {"email": "alice@example.com", "password": "x"}),
    ]:
        response = getattr(alice.api, method)(path, body) if body else getattr(alice.api, method)(path)
        assert response.status_code == 503, (path, response.content)
        assert response["Content-Type"] == "application/json"
        assert response["Retry-After"] == "5"
        assert response.json()["code"] == "database_unavailable"


def test_an_email_goes_out_once_when_the_connection_dies_after_sending(worker, mailbox, acme_live, monkeypatch):
    """Finding 4: the invitation email was sent inside the transaction holding the row lock; a connection killed
    before the commit made the retry send it again (16 of 84 twice, same Message-ID)."""
    from django.core.mail import EmailMessage

    real_send = EmailMessage.send
    killed: list[int] = []
    kill_lock = threading.Lock()

    def send_then_lose_the_connection(self: EmailMessage, *args: Any, **kwargs: Any) -> int:
        sent = real_send(self, *args, **kwargs)
        pid = connection.connection.info.backend_pid if connection.connection else None
        with kill_lock:  # the worker sends from several threads: claim one of the 3 kills atomically
            kill = pid is not None and len(killed) < 3
            if kill:
                killed.append(pid)
        if kill:  # the mail server has it; now the worker's database connection dies
            import psycopg

            params = connection.settings_dict
            with psycopg.connect(
                host=params["HOST"] or "127.0.0.1",
                port=params["PORT"] or 5432,
                user=params["USER"] or "postgres",
                dbname="postgres",
                autocommit=True,
            ) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
        return sent

    monkeypatch.setattr(EmailMessage, "send", send_then_lose_the_connection)
    organization, owner = acme_live
    ids = []
    for i in range(4):  # the free plan's 5 seats
        r = owner.post(f"/api/v1/organizations/{organization.slug}/invitations", {"email": f"once{i}@example.com",
                                                                                    "role": "member"})  # fmt: skip
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])
    wait_for_jobs(worker)
    assert len(killed) == 3
    counts = Counter(m["Message-ID"] for m in mailbox)
    assert len(counts) == 4 and set(counts.values()) == {1}, counts
    assert all(i.email_sent_version == i.token_version for i in Invitation.objects.filter(uid__in=ids))


@pytest.fixture
def acme_live(worker, alice) -> tuple[Organization, Api]:
    """An organization created through the API and provisioned by the worker (committed for real)."""
    r = alice.api.post("/api/v1/organizations", {"name": "Live", "slug": "live-co"})
    assert r.status_code == 202
    wait_for_jobs(worker)
    organization = Organization.objects.get(slug="live-co")
    assert organization.status == "active"
    return organization, alice.api
