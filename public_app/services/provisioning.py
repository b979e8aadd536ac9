"""Tenant schema provisioning from a template.

Running every tenant migration for each new organization is slow and gets slower as migrations accumulate. Instead a
template schema (`TENANT_TEMPLATE_SCHEMA`) is migrated to head, its DDL is captured once per migration state with
`pg_dump --schema-only`, and a new organization's schema is created by replaying that DDL as plain top-level
statements (Citus schema-based sharding only distributes tables created by top-level `CREATE TABLE`) in one
transaction, together with the template's `django_migrations` rows. The result is the schema `migrate` would build.

If pg_dump is unavailable or fails, provisioning falls back to running the migrations, which is slower but equal.
"""

import functools
import hashlib
import logging
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import quote_schema_name, schema_exists

from public_app import citus
from public_app.ids import new_ulid
from public_app.locks import advisory_xact_lock
from public_app.models import Organization, OrganizationStatus
from public_app.outbox import enqueue
from public_app.pgdump import PLACEHOLDER, schema_ddl
from public_app.pgtools import pg_connection_args, pg_tool
from public_app.services.billing.checkout import customer_create_request
from public_app.services.organizations import organization_mark_active
from public_app.tenancy import public_context, tenant_connection
from public_app.tenant_roles import role_create, role_drop, role_rename

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_templates: dict[str, "Template"] = {}


@dataclass(frozen=True)
class Template:
    state: str  # hash of the migration graph the DDL corresponds to
    ddl: str  # top-level statements; schema references are `PLACEHOLDER`
    migrations: tuple[tuple[str, str], ...]  # (app, name) rows of django_migrations


@functools.cache
def tenant_migrations() -> frozenset[tuple[str, str]]:
    """Every migration of the tenant apps that the code knows (what a tenant schema at head has applied)."""
    labels = {config.label for config in apps.get_app_configs() if config.name in settings.TENANT_APPS}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset((app, name) for app, name in loader.graph.nodes if app in labels)


def migration_state() -> str:
    """A fingerprint of the tenant migrations; it changes whenever a tenant migration is added or removed."""
    return state_of(tenant_migrations())


def state_of(migrations: Iterable[tuple[str, str]]) -> str:
    """The fingerprint of a set of applied tenant migrations: what `migration_state()` was (or will be) when the
    code's tenant migrations were exactly these."""
    nodes = sorted(f"{app}.{name}" for app, name in migrations)
    return hashlib.sha256("\n".join(nodes).encode()).hexdigest()[:16]


def schema_behind(organization_id: int, seen_state: str | None = None) -> bool:
    """Whether the organization's schema is recorded at another migration state than the code's (a rollout has
    not reached it yet), read fresh outside any broken transaction of the caller's; or was when the caller loaded
    the organization (`seen_state`): a rollout that commits between a request's failed query and this check has
    made the schema current meanwhile, and that request still met the old schema."""
    from django.db import DatabaseError

    code_state = migration_state()
    if seen_state and seen_state != code_state:
        return True
    try:
        if connection.in_atomic_block and connection.needs_rollback:
            return False  # cannot read here; a request's transaction is rolled back before its error handler
        with public_context():  # the tenant's role may not read the organizations table
            recorded = Organization.objects.filter(id=organization_id).values_list("migration_state", flat=True).first()
    except DatabaseError:
        return False
    return recorded is not None and recorded != code_state


def migrate_schema(schema_name: str) -> None:
    """Bring one existing tenant schema to head by running the migrations (the slow, always-correct path)."""
    call_command("migrate_schemas", tenant=True, schema_name=schema_name, interactive=False, verbosity=0)


def migrate_one(schema: str) -> tuple[str, str | None, float]:
    """Migrate one schema and record its state; never raises (the fleet run reports every failure at the end).
    Runs in `orgs migrate --jobs N` worker processes too (public_app.fleet_worker)."""
    import time

    from public_app.services.fleet.rollout import LOCK_RETRY_PAUSES

    started = time.monotonic()
    for pause in (*LOCK_RETRY_PAUSES, None):
        try:
            with connection.execute_wrapper(_migration_timeouts):
                migrate_schema(schema)
            Organization.objects.filter(schema_name=schema).update(migration_state=migration_state())
            return schema, None, time.monotonic() - started
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if pause is not None and "lock timeout" in error:  # a long transaction holds a table: later, again
                logger.info("migrating %s waited too long for a lock; again in %s s", schema, pause)
                time.sleep(pause)
                continue
            logger.exception("migrating %s failed", schema)
            return schema, error, time.monotonic() - started
        finally:
            tenant_connection().set_schema_to_public()
    raise AssertionError("unreachable")


def _migration_timeouts(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Every statement of a migration's own transaction is bounded as the rendered path's are
    (MIGRATION_LOCK_TIMEOUT_MS, MIGRATION_STATEMENT_TIMEOUT_MS), local to that transaction (so right behind a
    transaction pooler too). Not what Django sends outside one: the record of a migration whose SQL was deferred
    is written after its transaction, and failing that write would leave the migration applied but unrecorded."""
    if context["connection"].in_atomic_block:
        context["cursor"].cursor.execute(
            "SELECT pg_catalog.set_config('lock_timeout', %s, true), pg_catalog.set_config('statement_timeout', %s, "
            "true)", [f"{settings.MIGRATION_LOCK_TIMEOUT_MS}ms", f"{settings.MIGRATION_STATEMENT_TIMEOUT_MS}ms"]
        )
    return execute(sql, params, many, context)


def _pg_dump_ddl(schema_name: str) -> str:
    env, args = pg_connection_args()
    command = [pg_tool("pg_dump"), "--schema-only", "--no-owner", "--no-privileges", "--no-comments",
               "--schema", schema_name, *args, str(connection.settings_dict["NAME"])]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {result.stderr.strip()[:500]}")
    return result.stdout


def _build_template(state: str) -> Template:
    template = settings.TENANT_TEMPLATE_SCHEMA
    with transaction.atomic():
        advisory_xact_lock("tenant-template")  # one process at a time migrates and dumps the template
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_schema_name(template)}")
        migrate_schema(template)
    ddl = schema_ddl(_pg_dump_ddl(template), template)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {quote_schema_name(template)}.django_migrations ORDER BY id")
        migrations = tuple(cursor.fetchall())
    return Template(state=state, ddl=ddl, migrations=migrations)


def template_get() -> Template:
    """The template for the current code's migration state, built at most once per process and state."""
    state = migration_state()
    with _lock:
        if state not in _templates:
            _templates[state] = _build_template(state)
        return _templates[state]


def schema_create_from_template(schema_name: str, template: Template) -> None:
    """CREATE SCHEMA, the template's DDL, its migration records and the schema's role, in one transaction (a
    savepoint when nested)."""
    quoted = quote_schema_name(schema_name)
    with transaction.atomic():
        ddl = f"CREATE SCHEMA {quoted};\n" + template.ddl.replace(f"{PLACEHOLDER}.", f"{quoted}.")
        with connection.cursor() as cursor:
            if citus.enabled():
                # Citus forwards a DDL statement to the workers with the whole query string it came in, which a
                # worker refuses when it holds several commands: one statement per round trip there.
                for statement in ddl.split(";\n"):
                    if statement.strip():
                        cursor.execute(statement)
            else:
                cursor.execute(ddl)  # one round trip, top-level statements only
            cursor.executemany(
                f"INSERT INTO {quoted}.django_migrations (app, name, applied) VALUES (%s, %s, now())",
                list(template.migrations),
            )
        role_create(schema_name)


# Migration states whose template replay failed in this process: later schemas go straight to the migrations.
_replay_failed: set[str] = set()


def schema_build(schema_name: str, template: Template | None) -> str:
    """Create a tenant schema at head with its role: by replaying the template, or, when there is none or the
    engine refuses the replay, by running the migrations (slower, always accepted). Returns how ("template" or
    "migrations"). Runs in the caller's transaction; a refused replay is rolled back to its savepoint first."""
    if template is not None and template.state not in _replay_failed:
        try:
            schema_create_from_template(schema_name, template)
            return "template"
        except DatabaseError as exc:
            _replay_failed.add(template.state)
            logger.warning("replaying the template into %s failed (%s); running the migrations instead",
                           schema_name, error_summary(exc))  # fmt: skip
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {quote_schema_name(schema_name)}")
        migrate_schema(schema_name)
        tenant_connection().set_schema_to_public()
        role_create(schema_name)
    return "migrations"


def error_summary(exc: BaseException) -> str:
    """`Type: message` with the message's first line only (PostgreSQL's DETAIL and HINT lines follow it)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")


def organization_provision(*, organization_id: int) -> Organization | None:
    """Create the organization's schema at head and mark it `active`. Idempotent and safe to re-run after a crash at
    any point: everything happens in one transaction under a per-organization lock, and a schema left over from an
    earlier attempt (or an older migration state) is migrated rather than recreated."""
    organization = Organization.objects.filter(id=organization_id).first()
    if organization is None or organization.status in (OrganizationStatus.ACTIVE, OrganizationStatus.DELETING):
        return organization
    template: Template | None
    try:
        template = template_get()
    except Exception:
        logger.warning("template unavailable; provisioning %s by running migrations", organization.slug, exc_info=True)
        template = None
    with transaction.atomic():
        advisory_xact_lock(f"provision:{organization_id}")
        organization = Organization.objects.select_for_update().get(id=organization_id)
        if organization.status in (OrganizationStatus.ACTIVE, OrganizationStatus.DELETING):
            return organization
        used_spare = False
        how = "migrations"
        if schema_exists(organization.schema_name):
            migrate_schema(organization.schema_name)  # left over from an earlier attempt, or an older state
            tenant_connection().set_schema_to_public()
            role_create(organization.schema_name)  # completes the grants of a left-over schema too
        else:
            used_spare = template is not None and spare_claim(organization.schema_name)
            how = "spare" if used_spare else schema_build(organization.schema_name, template)
        Organization.objects.filter(id=organization.id).update(migration_state=migration_state())
        organization_mark_active(organization=organization)
        customer_create_request(organization=organization)
        if used_spare:
            enqueue("refill_spare_schemas", unique=True)
    logger.info("organization %s provisioned in schema %s (by %s)", organization.slug, organization.schema_name, how)
    return organization


# The spare pool: schemas built ahead from the same template, so that provisioning is a rename (spare_claim, above,
# is tried first); kept here because it is provisioning's own fast path and shares its template.
SPARE_PREFIX = "t_spare_"


def spare_claim(schema_name: str) -> bool:
    """Inside the caller's transaction, rename a ready spare schema (current migration state) to `schema_name`.
    False when none is ready; the caller then replays the template itself."""
    from public_app.models import SpareSchema

    if settings.TENANT_SPARE_SCHEMAS <= 0:
        return False
    while True:
        spare = (
            SpareSchema.objects.select_for_update(skip_locked=True)
            .filter(migration_state=migration_state())
            .order_by("id")
            .first()
        )
        if spare is None:
            return False
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"ALTER SCHEMA {quote_schema_name(spare.name)} RENAME TO {quote_schema_name(schema_name)}"
                    )
                # The role goes with its schema; its grants and default privileges follow the role's oid.
                role_rename(spare.name, schema_name)
        except DatabaseError:
            logger.warning("spare schema %s is unusable; dropping its record", spare.name, exc_info=True)
            spare.delete()
            continue
        spare.delete()
        return True


def spares_refill() -> int:
    """Drop spares built for an older migration state and build new ones up to TENANT_SPARE_SCHEMAS. One refill
    at a time (advisory lock); returns how many were built."""
    from public_app.leases import lease
    from public_app.models import SpareSchema

    with lease("spare-schemas-refill", timedelta(minutes=10)) as acquired:
        if not acquired:
            return 0
        state = migration_state()
        for stale in SpareSchema.objects.exclude(migration_state=state):
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(stale.name)} CASCADE")
                role_drop(stale.name)
                stale.delete()
        built = 0
        template = template_get() if settings.TENANT_SPARE_SCHEMAS > 0 else None
        while template is not None and SpareSchema.objects.filter(migration_state=state).count() < (
            settings.TENANT_SPARE_SCHEMAS
        ):
            name = SPARE_PREFIX + new_ulid()
            with transaction.atomic():
                how = schema_build(name, template)
                SpareSchema.objects.create(name=name, migration_state=state)
            logger.info("spare schema %s built (by %s)", name, how)
            built += 1
        return built
