"""Cross-tenant reads for incidents (`orgs sql`): one read-only statement run in each selected organization's
schema, combined into one table. Each organization's run is held by four walls: its own database role (so the
statement reaches that schema and nothing else, public tables included), a read-only transaction, a statement
timeout, and the extended query protocol (the server refuses a second statement hidden after a `;`, which could
otherwise reset the role)."""

from collections.abc import Callable
from typing import Any

import psycopg
from django.db.models import QuerySet
from django_tenants.utils import quote_schema_name

from public_app.models import Organization, OrganizationStatus
from public_app.pgtools import direct_connection
from public_app.services.provisioning import error_summary
from public_app.tenancy import tenant_role_name


def _cell(value: Any) -> Any:
    return value.hex() if isinstance(value, (bytes, memoryview)) else value


def fleet_sql(
    *,
    statement: str,
    organizations: QuerySet[Organization] | None = None,
    timeout_ms: int = 5000,
    row_limit: int = 1000,
    progress: Callable[[str, str | None], None] | None = None,
) -> dict[str, Any]:
    """Run `statement` in every active organization (or `organizations`), oldest first. Returns the columns (the
    slug first), the rows, and the organizations where it failed with their error; a failure in one does not stop
    the others."""
    targets = (organizations if organizations is not None else Organization.objects.all()).filter(
        status=OrganizationStatus.ACTIVE
    ).order_by("id")
    columns: list[str] | None = None
    rows: list[list[Any]] = []
    failed: dict[str, str] = {}
    truncated: list[str] = []
    with direct_connection() as conn:
        for organization in targets.only("slug", "schema_name"):
            try:
                with conn.transaction(), conn.cursor() as cursor:
                    role = quote_schema_name(tenant_role_name(organization.schema_name))
                    cursor.execute(f"SET LOCAL ROLE {role}")
                    cursor.execute(f"SET LOCAL search_path = {quote_schema_name(organization.schema_name)}")
                    cursor.execute("SET LOCAL transaction_read_only = on")
                    cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                    cursor.execute(statement, binary=True)
                    if cursor.description is None:
                        raise psycopg.ProgrammingError("the statement returns no rows (only SELECT-like ones run)")
                    found = cursor.fetchmany(row_limit + 1)
                    names = [column.name for column in cursor.description]
            except psycopg.Error as exc:
                failed[organization.slug] = error_summary(exc)
                if progress:
                    progress(organization.slug, failed[organization.slug])
                continue
            if columns is None:
                columns = ["organization", *names]
            if len(found) > row_limit:
                truncated.append(organization.slug)
                found = found[:row_limit]
            rows += [[organization.slug, *map(_cell, row)] for row in found]
            if progress:
                progress(organization.slug, None)
    return {"columns": columns or ["organization"], "rows": rows, "failed": failed, "truncated": truncated}
