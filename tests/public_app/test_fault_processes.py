"""The whole service under faults (issue 13), each run with processes and dependencies of its own: the run command
(`python -m config.launch`, what `bash .ci/serve` execs) on a private broker and cache, a test SMTP server, and a
database of its own. Every run asserts: every acknowledged write is present, every organization ends active,
every invitation is emailed exactly once, nothing answered 500 during the fault, and recovery happened within the
configured intervals (short ones here, set in the environment like any deployment would).
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.dependencies import PrivatePostgres, PrivateRabbitMQ, PrivateRedis
from tests.pooler import ROOT, Processes, free_port, wait_until
from tests.service import PASSWORD, Service

RECOVERY_BUDGET = 90  # seconds from the end of a fault until everything is done


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    wait_until(check, timeout, what)
    return time.monotonic() - started


def emailed_once(mailbox: list, addresses: list[str]) -> bool:
    counts = Counter(m["To"] for m in mailbox)
    return all(counts[a] >= 1 for a in addresses)


def assert_exactly_once(mailbox: list, addresses: list[str]) -> None:
    """One message per address, as mail systems count them: by Message-ID. A sender killed between the server's
    "250 accepted" and recording it sends again after its claim expires, with the same Message-ID
    (public_app/mail.py): the one window no sender can close without the receiver's help."""
    messages = {(m["To"], m["Message-ID"]) for m in mailbox}
    by_address = Counter(to for to, _ in messages)
    assert {a: by_address[a] for a in addresses} == dict.fromkeys(addresses, 1)


@pytest.fixture(scope="module", autouse=True)
def _test_database(django_db_setup: Any) -> None:
    """The suite's own test database exists (its session teardown connects to it), though these tests use theirs."""


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of the machine's PostgreSQL for this module's service (dropped afterwards, roles too)."""
    name = f"orgs_faults_{os.getpid()}"
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    _drop_database("postgres://postgres@127.0.0.1:5432/postgres", name)


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [f"{name}\\_%"]).fetchall():
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def redis_service(tmp_path_factory: Any, database: str, smtp_server: Any) -> Iterator[tuple[Service, PrivateRedis,
                                                                                          PrivateRedis]]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("faults")
    broker, cache = PrivateRedis(tmp).start(), PrivateRedis(tmp).start()
    service = Service(tmp, database, broker.url, cache.url, smtp_server.port).start()
    service.sign_up("ops@example.com")
    try:
        yield service, broker, cache
    finally:
        service.stop()
        broker.kill()
        cache.kill()


@pytest.fixture
def inbox(smtp_server: Any) -> list:
    smtp_server.handler.messages.clear()
    return smtp_server.handler.messages


def test_a_killed_worker_is_restarted_and_nothing_is_lost(redis_service: Any, inbox: list) -> None:
    """Finding 1: kill -9 of the Dramatiq worker process took the whole service down. Now the supervisor restarts
    it; meanwhile the API keeps answering, and the killed worker's jobs come back."""
    service, _, _ = redis_service
    # two workers: the priority lane (provisioning, emails: a burst of new organizations or one organization's
    # backlog holds up no invitation), and one for the rest
    assert len(service.child_pids(r"dramatiq.*jobs\.worker.*--queues provisioning emails\s*$")) >= 1
    assert len(service.child_pids(r"dramatiq.*jobs\.worker.*--queues billing integrations")) >= 1
    slugs = [f"kill-{i}" for i in range(50)]
    for i, slug in enumerate(slugs):
        service.create_organization(slug)
        if i == 20:
            for pid in service.child_pids(r"dramatiq.*jobs\.worker"):
                os.kill(pid, signal.SIGKILL)
    took = wait_for(lambda: service.statuses_of(slugs)["active"] == 50, RECOVERY_BUDGET, "organizations active")
    addresses = [f"kill-invitee-{i}@example.com" for i in range(50)]
    for i, address in enumerate(addresses):
        service.invite(slugs[i // 2], address)  # two per organization: within the free plan's seats
        if i == 20:
            for pid in service.child_pids(r"dramatiq.*jobs\.worker"):
                os.kill(pid, signal.SIGKILL)
    took = max(took, wait_for(lambda: emailed_once(inbox, addresses), RECOVERY_BUDGET, "invitations emailed"))
    time.sleep(2)  # anything sent twice would have arrived by now
    assert_exactly_once(inbox, addresses)
    assert service.statuses[500] == 0 and service.statuses[0] == 0, service.statuses
    assert service.metric("service_process_restarts_total", process="worker") >= 2
    assert service.metric("service_process_restarts_total", process="provisioner") >= 1
    assert service.process.poll() is None  # serve itself never went down
    print(f"recovered within {took:.1f} s")


def test_the_broker_stopped_and_restarted_empty_loses_no_job(redis_service: Any, inbox: list) -> None:
    """Findings 2 and 3: with the broker down, writes answered 500 though committed, and the scheduler died for
    good. Now writes answer normally, their jobs wait in the outbox, and run once the broker is back."""
    service, broker, _ = redis_service

    def restart() -> None:
        ready = httpx.get(f"{service.base}/readyz", timeout=10).json()
        assert ready["checks"]["broker"] == "down" and ready["jobs_waiting"] >= 14
        time.sleep(3)  # the scheduler keeps running through the outage
        broker.start()  # the same port, empty

    took = broker_outage(service, inbox, "broker", broker.kill, restart, organizations=10, invitations=4)
    assert service.child_pids(r"manage\.py scheduler"), "the scheduler is running"
    print(f"recovered within {took:.1f} s")


def broker_outage(service: Service, inbox: list, prefix: str, stop: Callable[[], None], restart: Callable[[], None],
                  organizations: int, invitations: int) -> float:  # fmt: skip
    """Writes while the broker is stopped, then its restart: every write acknowledged normally, every job done
    once it is back, every invitation emailed once. Returns the recovery time."""
    service.create_organization(f"{prefix}-base")
    wait_for(lambda: service.statuses_of([f"{prefix}-base"])["active"] == 1, 60, "base organization")
    stop()
    slugs = [f"{prefix}-{i}" for i in range(organizations)]
    for slug in slugs:
        service.create_organization(slug)
    addresses = [f"{prefix}-invitee-{i}@example.com" for i in range(invitations)]
    for address in addresses:
        service.invite(f"{prefix}-base", address)
    restart()
    took = wait_for(lambda: service.statuses_of(slugs)["active"] == organizations and emailed_once(inbox, addresses),
                    RECOVERY_BUDGET, "jobs after the broker came back")  # fmt: skip
    time.sleep(2)  # anything sent twice would have arrived by now
    assert_exactly_once(inbox, addresses)
    assert service.statuses[500] == 0, service.statuses
    return took


def test_a_stopped_cache_degrades_nothing_but_speed(redis_service: Any, inbox: list) -> None:
    """Finding 5: a cache outage gave 500 on every organization-scoped request of a user."""
    service, _, cache = redis_service
    service.create_organization("cache-co")
    wait_for(lambda: service.statuses_of(["cache-co"])["active"] == 1, 30, "organization")
    cache.kill()
    for _ in range(5):
        assert service.call("GET", "/api/v1/organizations/cache-co/members").status_code == 200
        assert service.call("GET", "/api/v1/me").status_code == 200
    address = "cache-invitee@example.com"
    service.invite("cache-co", address)
    assert httpx.get(f"{service.base}/readyz", timeout=10).json()["checks"]["cache"] == "down"
    wait_for(lambda: emailed_once(inbox, [address]), 30, "invitation emailed without the cache")
    cache.start()
    assert service.call("GET", "/api/v1/organizations/cache-co/members").status_code == 200
    assert service.statuses[500] == 0, service.statuses


def test_connections_terminated_during_writes_lose_no_acknowledged_write(redis_service: Any, inbox: list) -> None:
    service, _, _ = redis_service
    stop = [False]

    def terminate_loop() -> None:
        name = service.database_url.rsplit("/", 1)[1]
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            while not stop[0]:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                             "AND pid <> pg_backend_pid()", [name])  # fmt: skip
                time.sleep(0.15)

    import threading

    killer = threading.Thread(target=terminate_loop)
    killer.start()
    slugs = [f"term-{i}" for i in range(20)]
    try:
        for slug in slugs:
            service.create_organization(slug)
    finally:
        stop[0] = True
        killer.join()
    wait_for(lambda: service.statuses_of(slugs)["active"] == 20, RECOVERY_BUDGET, "organizations active")
    assert service.statuses[500] == 0, service.statuses


def test_rabbitmq_stopped_and_restarted_empty_loses_no_job(tmp_path: Path, smtp_server: Any, inbox: list) -> None:
    name = f"orgs_faults_amqp_{os.getpid()}"
    database = f"postgres://postgres@127.0.0.1:5432/{name}"
    rabbit, cache = PrivateRabbitMQ(tmp_path).start(), PrivateRedis(tmp_path).start()
    service = Service(tmp_path, database, rabbit.url, cache.url, smtp_server.port)
    try:
        service.start()
        service.sign_up("amqp@example.com")
        broker_outage(service, inbox, "amqp", rabbit.kill, rabbit.restart_empty, organizations=5, invitations=3)
    finally:
        service.stop()
        rabbit.kill()
        cache.kill()
        _drop_database("postgres://postgres@127.0.0.1:5432/postgres", name)


def test_a_database_restart_gives_503_with_retry_after_then_recovers(tmp_path: Path, smtp_server: Any,
                                                                     inbox: list) -> None:  # fmt: skip
    postgres = PrivatePostgres().init()
    broker, cache = PrivateRedis(tmp_path).start(), PrivateRedis(tmp_path).start()
    service = Service(tmp_path, postgres.url("orgs"), broker.url, cache.url, smtp_server.port)
    try:
        service.start()
        service.sign_up("db@example.com")
        service.create_organization("db-base")
        wait_for(lambda: service.statuses_of(["db-base"])["active"] == 1, 60, "base organization")
        postgres.stop()
        seen = []
        for _ in range(5):
            response = httpx.get(f"{service.base}/api/v1/organizations/pg-base/members",
                                 headers={"Authorization": f"Bearer {service.token}"}, timeout=15)  # fmt: skip
            seen.append(response)
        assert {r.status_code for r in seen} == {503}, [r.text for r in seen]
        assert all(r.headers["Content-Type"] == "application/json" and r.headers.get("Retry-After") for r in seen)
        assert {r.json()["code"] for r in seen} == {"database_unavailable"}
        assert httpx.get(f"{service.base}/readyz", timeout=15).status_code == 503
        postgres.start()
        slugs = [f"db-{i}" for i in range(5)]
        for slug in slugs:
            service.create_organization(slug)
        address = "db-invitee@example.com"
        service.invite("db-base", address)
        wait_for(lambda: service.statuses_of(slugs)["active"] == 5 and emailed_once(inbox, [address]),
                 RECOVERY_BUDGET, "jobs after the database came back")  # fmt: skip
        assert_exactly_once(inbox, [address])
        assert service.statuses[500] == 0, service.statuses
        assert service.process.poll() is None
    finally:
        service.stop()
        broker.kill()
        cache.kill()
        postgres.destroy()


def test_the_production_commands_of_the_readme_run_as_written(tmp_path: Path, smtp_server: Any, inbox: list) -> None:
    """Finding 6: `dramatiq jobs.worker` as the README wrote it did not start (ImproperlyConfigured)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Production", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("  #", 1)[0].strip() for line in block.strip().splitlines()]
    setup = " ".join(c.rstrip("\\").strip() for c in commands[:3])  # the environment and the one-off set-up
    runs = commands[3:]
    worker = "dramatiq_worker_timeout=100"
    assert [c.split()[0] for c in runs] == ["gunicorn", worker, worker, "python"], runs
    # the two workers consume every queue between them, the priority lane (provisioning, emails) in the second only
    from jobs.worker import PRIORITY_LANE, queues_besides_priority_lane

    consumed = [run.split("--queues", 1)[1].split() for run in runs[1:3]]
    assert consumed == [queues_besides_priority_lane(), PRIORITY_LANE], consumed
    name = f"orgs_faults_prod_{os.getpid()}"
    broker = PrivateRedis(tmp_path).start()
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"),
        "PYTHONUNBUFFERED": "1", "PORT": str(port), "HOST": "127.0.0.1", "EMAIL_HOST": "127.0.0.1",
        "TRUST_X_FORWARDED_PROTO": "true",  # behind the TLS-terminating proxy the README asks for
        "EMAIL_PORT": str(smtp_server.port), "BROKER_NAMESPACE": "orgs-prod", "WEB_CONCURRENCY": "1",
    }  # fmt: skip
    assignments = {
        "APP_ENV": "production", "SECRET_KEY": "x" * 60, "FIELD_ENCRYPTION_KEYS": _fernet_key(),
        "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "BROKER_URL": broker.url, "CACHE_URL": broker.url.replace("/0", "/1"),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "RATELIMIT_ENABLED": "false",
    }  # fmt: skip
    # The README's placeholders (`...`) become real values; every variable it sets is set.
    for variable in re.findall(r"(\w+)=\S+", commands[0] + commands[1]):
        assert variable in assignments, variable
    env.update(assignments)
    processes = Processes(tmp_path)
    try:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        for step in setup.split("&&"):
            words = [w for w in step.split() if "=" not in w or w.startswith("--")]
            subprocess.run(words, cwd=ROOT, env=env, check=True, timeout=300, capture_output=True)
        started = [processes.start(f"prod-{i}", ["sh", "-c", command], env) for i, command in enumerate(runs)]
        base = f"http://127.0.0.1:{port}"
        proxy = {"X-Forwarded-Proto": "https"}
        wait_until(lambda: httpx.get(f"{base}/healthz", headers=proxy, timeout=2).status_code == 200, 60, "gunicorn",
                   started[0])  # fmt: skip
        signup = httpx.post(f"{base}/api/v1/auth/signup", json={"email": "prod@example.com", "password": PASSWORD},
                            headers=proxy, timeout=15)  # fmt: skip
        assert signup.status_code == 201, signup.text
        auth = {**proxy, "Authorization": f"Bearer {signup.json()['token']}"}
        created = httpx.post(f"{base}/api/v1/organizations", json={"name": "Prod", "slug": "prod-co"}, headers=auth,
                             timeout=15)  # fmt: skip
        assert created.status_code == 202, created.text
        wait_until(lambda: httpx.get(f"{base}/api/v1/organizations/prod-co", headers=auth,
                                     timeout=5).json().get("status") == "active",
                   60, "the organization provisioned by the worker")  # fmt: skip
        assert all(p.poll() is None for p in started), [processes.log(f"prod-{i}")[-2000:] for i in range(len(runs))]
    finally:
        processes.stop_all()
        for _, process in processes.children:  # whatever a stopped command left behind (Dramatiq's processes)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        broker.kill()
        _drop_database("postgres://postgres@127.0.0.1:5432/postgres", name)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
