"""`manage.py serve`: everything a developer needs, in one foreground command, supervised.

Creates the database if it is missing, migrates the public schema, brings tenant schemas that are behind to head
(in parallel, skipping those already current, so start-up stays fast at any fleet size), re-enqueues organizations
left in `provisioning`, then runs the API server (gunicorn), a Dramatiq worker and the scheduler (outbox relay and
periodic jobs) as supervised children: one that exits is restarted with back-off (logged, and counted in
`/metrics` as `service_process_restarts_total`) while the others keep serving. Ctrl-C (or SIGTERM) stops all of
them cleanly.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection
from psycopg import sql

from public_app.models import Organization, OrganizationStatus

# A child that ran at least this long before exiting starts over at the shortest back-off.
STABLE_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0


def ensure_database() -> None:
    params = settings.DATABASES["default"]
    conninfo = {
        "host": params.get("HOST") or "localhost",
        "port": params.get("PORT") or 5432,
        "user": params.get("USER") or "postgres",
        "password": params.get("PASSWORD") or None,
        "dbname": "postgres",
    }
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v is not None}, autocommit=True) as conn:  # type: ignore[arg-type]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(params["NAME"])))


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    start_at: float = 0.0  # when to (re)start it; 0 = now
    extra: dict[str, Any] = field(default_factory=dict)


class Command(BaseCommand):
    help = "Set up the database and run the API server, the job workers and the scheduler, supervised."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument("--job-threads", type=int, default=int(os.environ.get("JOB_THREADS", "4")))
        parser.add_argument("--provisioning-threads", type=int,
                            default=int(os.environ.get("PROVISIONING_THREADS", "2")),
                            help="Threads of the priority-lane worker: provisioning and emails (0: the one job "
                                 "worker does everything).")  # fmt: skip
        parser.add_argument("--migrate-jobs", type=int, default=int(os.environ.get("MIGRATE_JOBS", "2")),
                            help="Tenant schemas migrated in parallel at start-up (only those behind).")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_database()
        if settings.BROKER_URL.startswith(("postgres://", "postgresql://")):
            from config.dramatiq import ensure_postgres_queue_schema

            ensure_postgres_queue_schema(settings.BROKER_URL)
        self.stdout.write("Migrating the public schema...")
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        if settings.CACHE_URL == "db://":
            call_command("createcachetable", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._metrics_dir()
        self._migrate_tenants(options["migrate_jobs"])
        self._requeue_provisioning()
        connection.close()

        host, port = options["host"], options["port"]
        bin_dir = os.path.dirname(sys.executable)
        os.environ["HOST"], os.environ["PORT"] = host, str(port)
        os.environ["WEB_CONCURRENCY"] = str(options["web_workers"])
        web = [os.path.join(bin_dir, "gunicorn"), "-c", str(settings.BASE_DIR / "config" / "gunicorn.conf.py"),
               "config.wsgi:application"]  # fmt: skip
        worker = [os.path.join(bin_dir, "dramatiq"), "jobs.worker", "--processes", "1"]
        jobs = [*worker, "--threads", str(options["job_threads"])]
        children = []
        if options["provisioning_threads"] > 0:
            # The priority lane (provisioning, emails) in a worker of its own: a burst of new organizations runs at
            # most this many schema creations at once (the rest of the machine keeps serving existing
            # organizations), and no organization's backlog of webhooks or syncs ever queues an invitation email.
            from jobs.worker import PRIORITY_LANE, queues_besides_priority_lane

            jobs += ["--queues", *queues_besides_priority_lane()]
            children.append(Child("provisioner", [*worker, "--threads", str(options["provisioning_threads"]),
                                                  "--queues", *PRIORITY_LANE]))  # fmt: skip
        db = settings.DATABASES["default"]
        self.stdout.write(
            f"Database: {db['NAME']} on {db.get('HOST')}:{db.get('PORT') or ''}\n"
            f"Broker:   {_display_url(settings.BROKER_URL)}\n"
            f"Cache:    {_display_url(settings.CACHE_URL)}\n"
            f"API:      http://{host}:{port}/api/v1/  (docs: http://{host}:{port}/api/v1/docs)",
        )
        # Redis consumers poll an idle queue with a back-off capped at this many ms (Dramatiq's default, 1000, adds
        # up to a second to "organization is active"); RabbitMQ pushes and PostgreSQL notifies, so it only bounds them.
        os.environ.setdefault("dramatiq_worker_timeout", "100")
        scheduler = [sys.executable, str(settings.BASE_DIR / "manage.py"), "scheduler"]
        self._supervise([Child("web", web), Child("worker", jobs), *children, Child("scheduler", scheduler)])

    def _metrics_dir(self) -> None:
        """One directory shared by every process for Prometheus samples, emptied at each start."""
        path = settings.BASE_DIR / ".data" / "metrics"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(path))

    def _migrate_tenants(self, jobs: int) -> None:
        from public_app.services.fleet import migrations
        from public_app.services.provisioning import error_summary, spares_refill

        started = time.monotonic()
        result = migrations.migrate_fleet(jobs=max(1, jobs))
        self.stdout.write(
            f"Tenant schemas: {result['skipped']} current, {result['migrated']} migrated, "
            f"{len(result['failed'])} failed ({time.monotonic() - started:.1f} s)"
        )
        for schema, error in result["failed"].items():
            self.stderr.write(f"  {schema}: {error} (see `manage.py orgs check`)")
        # The spare pool only makes provisioning faster: a refill that fails is reported and retried by the
        # scheduler; the service starts regardless (organizations are then provisioned without a spare).
        try:
            spares_refill()
        except Exception as exc:
            self.stderr.write(f"Spare schemas: refill failed ({error_summary(exc)}); provisioning goes on without "
                              "spares and the scheduler retries the refill")  # fmt: skip

    def _requeue_provisioning(self) -> None:
        from public_app.outbox import enqueue

        for org_id in Organization.objects.filter(status=OrganizationStatus.PROVISIONING).values_list("id", flat=True):
            enqueue("provision_organization", org_id, organization_id=org_id, unique=True)

    def _supervise(self, children: list[Child]) -> None:
        restarts = _restart_counter()
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                now = time.monotonic()
                for child in children:
                    if child.process is None:
                        if now >= child.start_at:
                            # Each child leads its own process group, so stopping it also stops what it forked.
                            child.process = subprocess.Popen(child.argv, start_new_session=True)
                            child.started_at = now
                        continue
                    code = child.process.poll()
                    if code is None:
                        continue
                    ran = now - child.started_at
                    doubled = min(MAX_BACKOFF_SECONDS, max(1.0, child.backoff * 2))
                    child.backoff = 1.0 if ran >= STABLE_AFTER_SECONDS else doubled
                    child.restarts += 1
                    restarts.labels(process=child.name).inc()
                    self.stderr.write(f"serve: {child.name} exited with {code} after {ran:.1f} s; restarting in "
                                      f"{child.backoff:.0f} s (restart {child.restarts})")  # fmt: skip
                    _kill_group(child.process)  # whatever it left behind (e.g. Dramatiq's surviving processes)
                    child.process = None
                    child.start_at = now + child.backoff
                time.sleep(0.2)
        finally:
            running = [c.process for c in children if c.process is not None]
            for process in running:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20  # > gunicorn's graceful_timeout
            for process in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _display_url(url: str) -> str:
    """Where a dependency is, without credentials (and readable: a PostgreSQL broker URL is not a path)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return url.split("@")[-1]
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _restart_counter() -> Any:
    """A counter this process shares with /metrics: prometheus_client picked its value store when Django set up,
    before serve chose PROMETHEUS_MULTIPROC_DIR, so this metric gets the multi-process store explicitly."""
    from prometheus_client import Counter, values

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.MultiProcessValue()
    return Counter("service_process_restarts_total", "Children of manage.py serve restarted after exiting",
                   ["process"], registry=None)  # fmt: skip
