"""Shared fixtures: an API client, personas in two organizations, a real Dramatiq worker on the real broker."""

import contextlib
import json as jsonlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from public_app.models import Membership, Organization, Role, User
from public_app.services.auth import token_issue
from public_app.services.organizations import organization_create
from public_app.services.provisioning import organization_provision, template_get

PASSWORD = "correct-horse-battery-staple"


class Api:
    """Django's test client speaking JSON with a bearer token: the whole middleware and ninja stack, no mocks."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        token: str | None = "",
        raw: bytes | None = None,
        content_type: str = "application/json",
        **headers: str,
    ) -> Any:
        bearer = self.token if token == "" else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        body = raw if raw is not None else (jsonlib.dumps(json) if json is not None else "")
        return self.client.generic(method, path, data=body, content_type=content_type, headers=headers)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@dataclass
class Persona:
    user: User
    token: str

    @property
    def api(self) -> Api:
        return Api(self.token)


def make_persona(email: str, name: str) -> Persona:
    """A signed-up user with a token (created directly: the signup endpoint has its own tests and a rate limit)."""
    from django.utils import timezone

    user = User.objects.create_user(email, PASSWORD, name=name, email_verified_at=timezone.now())
    return Persona(user=user, token=token_issue(user=user))


def make_org(owner: User, slug: str, name: str | None = None) -> Organization:
    """Create and provision synchronously (inside the test's transaction, so rollback drops the schema too)."""
    organization = organization_create(user=owner, name=name or slug.title(), slug=slug)
    organization_provision(organization_id=organization.id)
    organization.refresh_from_db()
    return organization


@pytest.fixture(scope="session")
def tenant_template(django_db_setup: Any, django_db_blocker: Any) -> None:
    """Migrate the template schema and capture its DDL once per test session."""
    with django_db_blocker.unblock():
        template_get()


@pytest.fixture(scope="session", autouse=True)
def _no_dns_off_the_machine() -> Iterator[None]:
    """Tests never send traffic off the loopback, DNS queries included: a name that is not an address literal or
    `localhost` does not resolve here (as for a name that does not exist). Tests that need names serve them."""
    import ipaddress
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in (None, "localhost"):
            try:
                ipaddress.ip_address(str(name).split("%")[0])
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: no DNS in tests") from None
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = real


@pytest.fixture(autouse=True)
def _responses_follow_the_contract() -> Iterator[None]:
    """Each error response of the test must be documented for its operation (tests/contract.py)."""
    from tests.contract import contract_violations

    contract_violations.clear()
    yield
    found = list(contract_violations)
    contract_violations.clear()
    assert not found, "responses the OpenAPI document does not describe:\n" + "\n".join(found)


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    from public_app.cache import memo_clear

    cache.clear()
    memo_clear()
    yield
    cache.clear()
    memo_clear()


@pytest.fixture(autouse=True)
def _connection_back_to_public() -> Iterator[None]:
    yield
    connection.set_schema_to_public()


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def alice(db: Any) -> Persona:
    return make_persona("alice@example.com", "Alice Owner")


@pytest.fixture
def bob(db: Any) -> Persona:
    return make_persona("bob@example.com", "Bob Admin")


@pytest.fixture
def carol(db: Any) -> Persona:
    return make_persona("carol@example.com", "Carol Member")


@pytest.fixture
def dave(db: Any) -> Persona:
    return make_persona("dave@example.com", "Dave Billing")


@pytest.fixture
def eve(db: Any) -> Persona:
    """An outsider to acme; owner of globex."""
    return make_persona("eve@example.com", "Eve Outsider")


@pytest.fixture
def acme(tenant_template: None, alice: Persona, bob: Persona, carol: Persona, dave: Persona) -> Organization:
    organization = make_org(alice.user, "acme")
    Membership.objects.create(user=bob.user, organization=organization, role=Role.ADMIN)
    Membership.objects.create(user=carol.user, organization=organization, role=Role.MEMBER)
    Membership.objects.create(user=dave.user, organization=organization, role=Role.BILLING)
    return organization


@pytest.fixture
def globex(tenant_template: None, eve: Persona) -> Organization:
    return make_org(eve.user, "globex")


@pytest.fixture
def personas(alice: Persona, bob: Persona, carol: Persona, dave: Persona, eve: Persona) -> dict[str, Persona]:
    return {"owner": alice, "admin": bob, "member": carol, "billing": dave, "outsider": eve}


def drop_tenant_schemas() -> None:
    """Committed tenant schemas and their roles (roles are cluster-wide: they outlive the test database)."""
    from public_app.tenant_roles import roles_with_prefix

    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP SCHEMA "{name}" CASCADE')
        for role in roles_with_prefix():
            cursor.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


@pytest.fixture(scope="session", autouse=True)
def _drop_tenant_roles_at_the_end(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    yield
    from django.db import OperationalError

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        # The test database may be gone already (a run of process tests only): then nothing is left to drop.
        with contextlib.suppress(OperationalError):
            drop_tenant_schemas()
        connection.close()
    _release_pooled_server_connections()


def _release_pooled_server_connections() -> None:
    """Through a pooler (PGBOUNCER_ADMIN_PORT set), its idle server connections to the test database would keep
    PostgreSQL from dropping it at the end: close them (KILL), then let new clients in again (RESUME)."""
    import os

    import psycopg

    port = os.environ.get("PGBOUNCER_ADMIN_PORT")
    if not port:
        return
    name = connection.settings_dict["NAME"]
    with psycopg.connect(host="127.0.0.1", port=int(port), user="postgres", dbname="pgbouncer",
                         autocommit=True) as admin:  # fmt: skip
        admin.execute(f'KILL "{name}"')
        admin.execute(f'RESUME "{name}"')


@pytest.fixture(scope="session")
def _session_worker(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dramatiq.Worker]:
    """One real Dramatiq worker on the real broker for the whole session (started on first use)."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop()
    broker.flush_all()


@pytest.fixture
def worker(transactional_db: Any, tenant_template: None, _session_worker: dramatiq.Worker) -> Iterator[dramatiq.Worker]:
    """The session's worker, with an empty broker. Tests using it commit for real, so the tenant schemas they
    create are dropped afterwards."""
    _session_worker.broker.flush_all()
    try:
        yield _session_worker
    finally:
        _session_worker.broker.flush_all()
        connection.set_schema_to_public()
        drop_tenant_schemas()


def wait_for_jobs(worker: dramatiq.Worker, timeout_ms: int = 30000) -> None:
    """Until every queue (and its delay queue) is empty and the worker is idle."""
    broker = dramatiq.get_broker()
    for _ in range(2):  # a job may enqueue another one
        for queue in sorted(broker.get_declared_queues()):
            broker.join(queue, timeout=timeout_ms)
        worker.join()


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Any]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd); messages land in `.handler.messages`."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(_Collector(), hostname="127.0.0.1", port=port)
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: Any, settings: Any) -> list[Any]:
    """Route Django's default mailer to the test SMTP server; the list fills as messages arrive."""
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 5},
        }
    }
    smtp_server.handler.messages.clear()
    return smtp_server.handler.messages


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers with scripted statuses."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[dict] = []
        self.script: list[int] = []
        self.event = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"status {status}".encode())
                receiver.event.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10) -> list[dict]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0.2, 0.2, 0.2]
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def leadsforce(settings: Any) -> Iterator[Any]:
    from tests.fakes.leadsforce import FakeLeadsforce

    fake = FakeLeadsforce()
    settings.LEADSFORCE_API_URL = fake.url
    yield fake
    fake.close()


STRIPE_WEBHOOK_SECRET = "whsec_test_stripe"


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[Any]:
    from tests.fakes.stripe import FakeStripe

    fake = FakeStripe()
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET
    settings.STRIPE_PRICE_TEAM = "price_team_test"
    settings.STRIPE_PRICE_BUSINESS = "price_business_test"
    settings.BILLING_SEAT_SYNC_DELAY_MS = 200
    yield fake
    fake.close()
