"""`manage.py serve`: everything a developer needs, in one foreground command.

Creates the database if it is missing, migrates the public schema and every tenant schema, re-enqueues
organizations left in `provisioning`, then runs the API server (gunicorn), a Dramatiq worker and the periodic-job
scheduler together. Ctrl-C (or SIGTERM) stops all three; if one exits, the others are stopped and the command fails.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection
from psycopg import sql

from public_app.models import Organization, OrganizationStatus


def ensure_database() -> None:
    params = settings.DATABASES["default"]
    conninfo = {
        "host": params.get("HOST") or "localhost",
        "port": params.get("PORT") or 5432,
        "user": params.get("USER") or "postgres",
        "password": params.get("PASSWORD") or None,
        "dbname": "postgres",
    }
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v is not None}, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(params["NAME"])))


class Command(BaseCommand):
    help = "Set up the database and run the API server and a job worker together (development)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument("--job-threads", type=int, default=int(os.environ.get("JOB_THREADS", "4")))

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
        self._migrate_tenants()
        self._requeue_provisioning()
        connection.close()

        host, port = options["host"], options["port"]
        bin_dir = os.path.dirname(sys.executable)
        os.environ["HOST"], os.environ["PORT"] = host, str(port)
        os.environ["WEB_CONCURRENCY"] = str(options["web_workers"])
        web = [os.path.join(bin_dir, "gunicorn"), "-c", str(settings.BASE_DIR / "config" / "gunicorn.conf.py"),
               "config.wsgi:application"]  # fmt: skip
        jobs = [
            os.path.join(bin_dir, "dramatiq"), "jobs.worker",
            "--processes", "1", "--threads", str(options["job_threads"]),
        ]  # fmt: skip
        db = settings.DATABASES["default"]
        self.stdout.write(
            f"Database: {db['NAME']} on {db.get('HOST')}:{db.get('PORT') or ''}\n"
            f"Broker:   {settings.BROKER_URL.split('@')[-1]}\n"
            f"Cache:    {settings.CACHE_URL.split('@')[-1]}\n"
            f"API:      http://{host}:{port}/api/v1/  (docs: http://{host}:{port}/api/v1/docs)",
        )
        # Redis consumers poll an idle queue with a back-off capped at this many ms (Dramatiq's default, 1000, adds
        # up to a second to "organization is active"); RabbitMQ pushes and PostgreSQL notifies, so it only bounds them.
        os.environ.setdefault("dramatiq_worker_timeout", "100")
        scheduler = [sys.executable, "manage.py", "scheduler"]
        self._run_together([web, jobs, scheduler])

    def _metrics_dir(self) -> None:
        """One directory shared by every process for Prometheus samples, emptied at each start."""
        path = settings.BASE_DIR / ".data" / "metrics"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(path))

    def _migrate_tenants(self) -> None:
        from public_app.services.provisioning import migrate_schema, template_get

        schemas = list(
            Organization.objects.exclude(status__in=[OrganizationStatus.PROVISIONING, OrganizationStatus.FAILED])
            .order_by("id")
            .values_list("schema_name", flat=True)
        )
        self.stdout.write(f"Migrating the tenant template and {len(schemas)} tenant schema(s)...")
        template_get()
        for schema in schemas:
            migrate_schema(schema)
        from public_app.services.provisioning import spares_refill

        spares_refill()

    def _requeue_provisioning(self) -> None:
        from jobs.provisioning import provision_organization

        for org_id in Organization.objects.filter(status=OrganizationStatus.PROVISIONING).values_list("id", flat=True):
            provision_organization.send(org_id)

    def _run_together(self, commands: list[list[str]]) -> None:
        # Each child leads its own process group, so stopping it also stops whatever it forked (gunicorn workers).
        processes = [subprocess.Popen(command, start_new_session=True) for command in commands]
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                for process in processes:
                    if process.poll() is not None:
                        self.stderr.write(f"{process.args[0]} exited with {process.returncode}; stopping.")
                        exit_code = process.returncode or 1
                        stopping = True
                time.sleep(0.2)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20  # > gunicorn's graceful_timeout
            for process in processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # anything left in the group (e.g. stuck workers)
        if exit_code:
            sys.exit(exit_code)
