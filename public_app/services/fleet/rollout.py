"""Fleet migrations at fleet speed: each pending migration's SQL is rendered once per migration state, then applied
to every schema at that state in a tight loop over a few connections.

Django's executor costs ~80 ms per schema for a migration whose `ALTER TABLE` takes a fraction of a millisecond:
it loads the migration graph, rebuilds the project state and introspects the schema every time. Every tenant schema
at the same recorded state has the same structure (that is what `orgs check` verifies), so the statements Django
would send are the same for all of them: they are collected once (`schema_editor(collect_sql=True)`, rendered
against one schema of the group, as `sqlmigrate` does) and sent to each schema in one transaction together with its
migration records and its recorded state. A schema whose applied migrations are not the group's is left to
Django's executor, and so is a group whose plan holds an operation that cannot be written as SQL (RunPython) or a
non-atomic migration: same result, the slow way. A failing schema is rolled back and reported; the others go on.
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_tenants.utils import quote_schema_name

from public_app import citus
from public_app.pgtools import direct_connection
from public_app.tenancy import schema_context

logger = logging.getLogger(__name__)

Progress = Callable[[str, str | None], None]  # (schema, error or None), once per schema done


@dataclass(frozen=True)
class Rendered:
    """What a group of schemas at one migration state needs: the migrations to record, and their SQL."""

    applied: frozenset[tuple[str, str]]  # the tenant migrations the group has applied
    migrations: tuple[tuple[str, str], ...]  # pending, in the order Django would apply them
    statements: tuple[str, ...]


def tenant_labels() -> frozenset[str]:
    return frozenset(config.label for config in apps.get_app_configs() if config.name in settings.TENANT_APPS)


def applied_in(schema: str) -> frozenset[tuple[str, str]]:
    """The tenant-app migrations recorded as applied in `schema`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app, name FROM {quote_schema_name(schema)}.django_migrations WHERE app = ANY(%s)",
            [sorted(tenant_labels())],
        )
        return frozenset((app, name) for app, name in cursor.fetchall())


def render(schema: str) -> Rendered | None:
    """The SQL that brings `schema` (and every schema with the same applied migrations) to head, or None when the
    plan cannot be written as SQL (an operation such as RunPython, or a non-atomic migration)."""
    labels = tenant_labels()
    with schema_context(schema, as_tenant=False):
        executor = MigrationExecutor(connection)
        targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] in labels]
        plan = [(migration, backwards) for migration, backwards in executor.migration_plan(targets)
                if migration.app_label in labels]  # fmt: skip
        if any(backwards for _, backwards in plan):
            return None
        for migration, _ in plan:
            if not migration.atomic or not all(operation.reduces_to_sql for operation in migration.operations):
                return None
        statements = [sql for sql in executor.loader.collect_sql(plan) if not sql.startswith("--")]
        applied = frozenset(node for node in executor.loader.applied_migrations if node[0] in labels)
    return Rendered(applied=applied, migrations=tuple((m.app_label, m.name) for m, _ in plan),
                    statements=tuple(statements))  # fmt: skip


def _apply(conn: psycopg.Connection, schema: str, rendered: Rendered, state: str, one_by_one: bool) -> str | None:
    """One schema, one transaction: check it is at the group's state, run the statements, record the migrations
    and the state. Returns None when done, "fallback" when the schema is not at the group's state, else the
    error."""
    quoted = quote_schema_name(schema)
    labels = sorted(tenant_labels())
    try:
        with conn.transaction():
            conn.execute(
                "SELECT pg_catalog.set_config('search_path', %s, true), pg_catalog.set_config('lock_timeout', %s, "
                "true), pg_catalog.set_config('statement_timeout', %s, true)",
                [f"{schema}, public", f"{settings.MIGRATION_LOCK_TIMEOUT_MS}ms",
                 f"{settings.MIGRATION_STATEMENT_TIMEOUT_MS}ms"],
            )  # fmt: skip
            # The organization's row first: a restore swaps schemas under the same lock (fleet.restore), so the
            # state recorded below is always that of the schema migrated here.
            conn.execute("SELECT 1 FROM public.public_app_organization WHERE schema_name = %s FOR UPDATE", [schema])
            rows = conn.execute(f"SELECT app, name FROM {quoted}.django_migrations WHERE app = ANY(%s)", [labels])
            if frozenset((app, name) for app, name in rows.fetchall()) != rendered.applied:
                return "fallback"
            if rendered.statements:
                if one_by_one:  # Citus forwards a DDL's whole query string to its workers: one command each
                    for statement in rendered.statements:
                        conn.execute(statement.encode())
                else:
                    conn.execute("\n".join(rendered.statements).encode())
            with conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {quoted}.django_migrations (app, name, applied) VALUES (%s, %s, now())",
                    list(rendered.migrations),
                )
            conn.execute("UPDATE public.public_app_organization SET migration_state = %s WHERE schema_name = %s",
                         [state, schema])  # fmt: skip
        return None
    except psycopg.Error as exc:
        names = [f"{app}.{name}" for app, name in rendered.migrations]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"{type(exc).__name__}: {str(exc).strip()} (applying {shown})"


# A schema whose tables a long transaction holds (lock_timeout reached) is tried again after these pauses, then
# reported as failed (a later run retries it).
LOCK_RETRY_PAUSES = (0.5, 2.0, 5.0)


def _apply_retrying(
    conn: psycopg.Connection, schema: str, rendered: Rendered, state: str, one_by_one: bool
) -> str | None:
    """`_apply`, again after a pause when it gave up waiting for a lock. The wait is bounded (lock_timeout,
    MIGRATION_LOCK_TIMEOUT_MS) so that an `ALTER TABLE` queued behind a long transaction never makes the
    organization's requests queue behind it for longer than that."""
    outcome = _apply(conn, schema, rendered, state, one_by_one)
    for pause in LOCK_RETRY_PAUSES:
        if outcome is None or not outcome.startswith("LockNotAvailable"):
            break
        logger.info("migrating %s waited too long for a lock; again in %.1f s", schema, pause)
        time.sleep(pause)
        outcome = _apply(conn, schema, rendered, state, one_by_one)
    return outcome


def apply_to(
    schemas: list[str],
    rendered: Rendered,
    state: str,
    *,
    jobs: int,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Apply `rendered` to each schema over `jobs` connections, starting no schema once `stop` is set. Returns
    (failures, schemas to migrate the slow way because they were not at the group's state)."""
    todo = list(schemas)
    lock = threading.Lock()
    failures: dict[str, str] = {}
    fallback: list[str] = []
    one_by_one = citus.enabled()

    def work() -> None:
        with direct_connection() as conn:
            while True:
                with lock:
                    if not todo or (stop is not None and stop.is_set()):
                        return
                    schema = todo.pop(0)
                outcome = _apply_retrying(conn, schema, rendered, state, one_by_one)
                with lock:
                    if outcome == "fallback":
                        fallback.append(schema)
                        continue
                    if outcome is not None:
                        failures[schema] = outcome
                        logger.error("migrating %s failed: %s", schema, outcome)
                    if progress:
                        progress(schema, outcome)

    threads = [threading.Thread(target=work, name=f"rollout-{i}") for i in range(max(1, min(jobs, len(todo))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures, fallback


def group_by_state(rows: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(schema, recorded state) rows → schemas by recorded state, in the order given."""
    groups: dict[str, list[str]] = defaultdict(list)
    for schema, recorded in rows:
        groups[recorded].append(schema)
    return groups


def rollout(
    todo: list[tuple[str, str]],
    state: str,
    *,
    jobs: int,
    slow: Callable[[list[str]], dict[str, str]],
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Bring the schemas of `todo` ((schema, recorded state) pairs) to `state`: the rendered way where it can, the
    slow way (`slow(schemas) -> failures`) where it cannot. Returns failures and how many went which way."""
    failures: dict[str, str] = {}
    rendered_count = 0
    slow_schemas: list[str] = []
    started = time.monotonic()
    for _, schemas in group_by_state(todo).items():
        if stop is not None and stop.is_set():
            break
        try:
            rendered = render(schemas[0])
        except Exception as exc:  # a schema that cannot even be read: the slow way reports it properly
            logger.warning("rendering the migrations of %s failed (%s); migrating the slow way", schemas[0], exc)
            rendered = None
        if rendered is None:
            slow_schemas += schemas
            continue
        group_failures, fallback = apply_to(schemas, rendered, state, jobs=jobs, progress=progress, stop=stop)
        failures.update(group_failures)
        rendered_count += len(schemas) - len(fallback) - len(group_failures)
        slow_schemas += fallback
    if slow_schemas and not (stop is not None and stop.is_set()):
        failures.update(slow(slow_schemas))
    return {"failed": failures, "rendered": rendered_count, "slow": len(slow_schemas),
            "seconds": round(time.monotonic() - started, 2)}  # fmt: skip
