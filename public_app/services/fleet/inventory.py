"""Inventory: organizations with their schema, node, size, migration state and members; row counts of one
schema."""

from typing import Any

from django.db import connection
from django_tenants.utils import quote_schema_name

from public_app import citus
from public_app.models import (
    Organization,
)
from public_app.services.fleet import SCHEMA_PREFIX
from public_app.services.provisioning import (
    migration_state,
)


def schema_sizes(schema: str | None = None) -> dict[str, int]:
    """Bytes on disk per tenant schema (tables with their indexes and TOAST); one schema, or all of them."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, COALESCE(SUM(pg_total_relation_size(c.oid)), 0)
            FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm')
            WHERE n.nspname LIKE %s AND (%s::text IS NULL OR n.nspname = %s) GROUP BY n.nspname
            """,
            [SCHEMA_PREFIX, schema, schema],
        )
        return {schema: int(size) for schema, size in cursor.fetchall()}


def _tables(schema: str | None = None) -> dict[str, set[str]]:
    """The tables of every tenant schema (or one), by schema; a schema without tables is there, with none."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, coalesce(array_agg(c.relname) FILTER (WHERE c.relname IS NOT NULL), '{}')
            FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
            WHERE n.nspname LIKE %s AND (%s::text IS NULL OR n.nspname = %s) GROUP BY n.nspname
            """,
            [SCHEMA_PREFIX, schema, schema],
        )
        return {name: set(found) for name, found in cursor.fetchall()}


def tenant_tables() -> set[str]:
    """The tables the code's tenant models have (with many-to-many tables), and the migration records'."""
    from django.apps import apps
    from django.conf import settings

    found = {"django_migrations"}
    for config in apps.get_app_configs():
        if config.name not in settings.TENANT_APPS:
            continue
        for model in config.get_models(include_auto_created=True):
            if model._meta.managed and not model._meta.proxy:
                found.add(model._meta.db_table)
    return found


def organizations_report(*, status: str | None = None, slug: str | None = None) -> list[dict[str, Any]]:
    """One row per organization: slug, schema, status, members, plan, size on disk, migration state, activity."""
    from django.db.models import Count, Max

    queryset = Organization.objects.annotate(
        members=Count("memberships"), last_activity=Max("memberships__last_accessed_at")
    ).order_by("id")
    if status:
        queryset = queryset.filter(status=status)
    if slug:
        queryset = queryset.filter(slug=slug)
    only = queryset.values_list("schema_name", flat=True).first() if slug else None
    nodes: dict[str, str] = {}
    if citus.enabled():  # the coordinator's tables are empty shells: ask the cluster where the rows are
        found = citus.placements([only] if only else None)
        sizes = {schema: placement.bytes for schema, placement in found.items()}
        nodes = {schema: placement.node for schema, placement in found.items()}
        local = schema_sizes(only)  # a schema Citus does not distribute (drift) still has a local size
        sizes.update({schema: size for schema, size in local.items() if schema not in found})
    else:
        sizes = schema_sizes(only)
    expected = migration_state()
    tables = _tables(only)
    head_tables = tenant_tables()

    def migrations(org: Organization) -> str:
        # what is there, not only what was recorded: a schema or a table dropped by hand shows
        if org.schema_name not in tables:
            return "no schema"
        if not org.migration_state:
            return "none"
        if org.migration_state != expected:
            return "behind"
        return "tables missing" if head_tables - tables[org.schema_name] else "current"

    return [
        {
            "slug": org.slug,
            "id": org.uid,
            "schema": org.schema_name,
            "status": org.status,
            "members": org.members,
            "plan": org.plan,
            "schema_bytes": sizes.get(org.schema_name),
            "node": nodes.get(org.schema_name) or ("local" if org.schema_name in sizes else None),
            "migrations": migrations(org),
            "last_activity": org.last_activity.isoformat() if org.last_activity else None,
            "status_reason": org.status_reason or None,
        }
        for org in queryset
    ]


def table_row_counts(schema: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' "
            "ORDER BY table_name",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {quote_schema_name(schema)}.{quote_schema_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def organizations_top(*, by: str, limit: int = 20) -> list[dict[str, Any]]:
    """The organizations that weigh most: by size on disk, by rows (the planner's estimates: no table is
    counted), or by jobs waiting in the outbox. One query each over the whole fleet."""
    from django.db.models import Count

    from public_app.models import OutboxMessage

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, coalesce(sum(pg_total_relation_size(c.oid)), 0),
                   coalesce(sum(greatest(c.reltuples, 0)) FILTER (WHERE c.relname <> 'django_migrations'), 0)
            FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
            WHERE n.nspname LIKE %s GROUP BY n.nspname
            """,
            [SCHEMA_PREFIX],
        )
        weights = {schema: (int(size), int(rows)) for schema, size, rows in cursor.fetchall()}
    waiting = dict(OutboxMessage.objects.exclude(organization_id=None).values("organization_id")
                   .annotate(n=Count("id")).values_list("organization_id", "n"))  # fmt: skip
    rows: list[dict[str, Any]] = [
        {"slug": slug, "schema": schema, "bytes": weights.get(schema, (0, 0))[0],
         "rows": weights.get(schema, (0, 0))[1], "jobs_waiting": waiting.get(org_id, 0)}
        for org_id, slug, schema in Organization.objects.values_list("id", "slug", "schema_name")
    ]  # fmt: skip
    rows.sort(key=lambda row: (-row[by], row["slug"]))
    return rows[:limit]
