"""Archive: one organization exported to a tarball (its schema dump and public rows) and imported back."""

import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django_tenants.utils import quote_schema_name
from psycopg.rows import dict_row

from public_app.models import (
    ApiKey,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrganizationStatus,
    User,
)
from public_app.pgdump import replayable_dump
from public_app.pgtools import direct_connection, pg_connection_args, pg_tool
from public_app.services.provisioning import migrate_one, migration_state
from public_app.tenant_roles import role_create

ARCHIVE_VERSION = 1
_ORGANIZATION_FIELDS = ("uid", "name", "slug", "schema_name", "plan", "website", "billing_email", "timezone",
                        "migration_state")  # fmt: skip
_INVITATION_FIELDS = ("email", "role", "token_salt", "token_hash", "token_version", "expires_in_days", "expires_at")
_API_KEY_FIELDS = ("name", "role", "prefix", "key_hash", "expires_at")


def _rows(conn: psycopg.Connection, queryset: QuerySet) -> list[dict[str, Any]]:
    """A `.values(...)` queryset run on `conn` (in its transaction) instead of Django's connection; dates as ISO
    text, as they go into the archive."""
    sql, params = queryset.query.sql_with_params()
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(sql, params)
        return [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()} for row in cursor]


def row_counts(conn: psycopg.Connection | None, schema: str) -> dict[str, int]:
    """Rows of every table in `schema` (on `conn`, in its transaction, or on Django's connection)."""
    quoted = quote_schema_name(schema)
    query = "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename"
    if conn is None:
        with connection.cursor() as cursor:
            cursor.execute(query, [schema])
            tables = [t for (t,) in cursor.fetchall()]
            counts = {}
            for table in tables:
                cursor.execute(f"SELECT count(*) FROM {quoted}.{quote_schema_name(table)}")
                counts[table] = cursor.fetchone()[0]
            return counts
    tables = [t for (t,) in conn.execute(query, [schema]).fetchall()]
    return {t: _scalar(conn, f"SELECT count(*) FROM {quoted}.{quote_schema_name(t)}") for t in tables}


def _scalar(conn: psycopg.Connection, query: str) -> Any:
    """The one value of a query that always returns one row (an aggregate, a function call)."""
    row = conn.execute(query.encode()).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row[0]


class ExportRefused(Exception):
    pass


def export_gaps(organization: Organization) -> str:
    """What an export of the organization would silently lack: its schema, or (at the code's migration state)
    tables the code has."""
    from public_app.services.fleet.inventory import tenant_tables

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
            [organization.schema_name],
        )
        tables = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [organization.schema_name])
        if cursor.fetchone() is None:
            return f"its schema {organization.schema_name} does not exist"
    if organization.migration_state != migration_state():
        return ""  # behind: an older release had fewer tables (`orgs check` compares it with its own migrations)
    lacking = sorted(tenant_tables() - tables)
    return f"its schema lacks tables: {', '.join(lacking)}" if lacking else ""


def export_organization(*, organization: Organization, path: Path, incomplete: bool = False) -> dict[str, Any]:
    """One .tar.gz: the tenant schema (`pg_dump -n`, which locks only that schema's tables, so it works with
    thousands of schemas), the organization's public rows and every table's row count, all as of one point in time:
    a repeatable-read transaction exports its snapshot, reads the public rows and the counts, and pg_dump reads the
    schema in that same snapshot (`--snapshot`). Writes go on meanwhile; none of them is in the archive."""
    env, args = pg_connection_args()
    schema = organization.schema_name
    missing = export_gaps(organization)
    if missing and not incomplete:
        raise ExportRefused(f"{organization.slug}: {missing}; see `orgs check` (--incomplete exports what is there)")
    with tempfile.TemporaryDirectory() as tmp, direct_connection() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            # Behind a transaction pooler the server connection may carry another client's session settings
            # (pg_dump sets an empty search_path for its session): the path is this transaction's own.
            _scalar(conn, "SELECT pg_catalog.set_config('search_path', 'public', true)")
            snapshot = _scalar(conn, "SELECT pg_export_snapshot()")
            taken_at = _scalar(conn, "SELECT now()")
            (source,) = _rows(conn, Organization.objects.filter(id=organization.id).values(*_ORGANIZATION_FIELDS))
            public = {
                "organization": source,
                "memberships": _rows(conn, Membership.objects.filter(organization=organization).order_by("id")
                                     .values("role", "deactivated_at", email=F("user__email"),
                                             name=F("user__name"))),
                "invitations": _rows(conn, Invitation.objects.filter(
                    organization=organization, status=InvitationStatus.PENDING).order_by("id")
                                     .values(*_INVITATION_FIELDS)),
                "api_keys": _rows(conn, ApiKey.objects.filter(organization=organization, revoked_at__isnull=True)
                                  .order_by("id").values(*_API_KEY_FIELDS)),
            }  # fmt: skip
            counts = row_counts(conn, schema)
            dump = Path(tmp) / "schema.sql"
            subprocess.run(
                [pg_tool("pg_dump"), *args, "--no-owner", "--no-privileges", "--schema", schema,
                 "--snapshot", snapshot, "--file", str(dump), str(connection.settings_dict["NAME"])],
                env=env, check=True, capture_output=True, timeout=3600,
            )  # fmt: skip
        manifest = {
            "version": ARCHIVE_VERSION,
            "exported_at": taken_at.isoformat(),
            "organization": organization.uid,
            "source_schema": schema,
            "migration_state": source["migration_state"],
            "rows": counts,
        }
        (Path(tmp) / "public.json").write_text(json.dumps(public, indent=1))
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=1))
        # It holds API key and invitation hashes and every row: readable by its owner only, from the first byte.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "wb") as file, tarfile.open(fileobj=file, mode="w:gz") as archive:
            for name in ("manifest.json", "public.json", "schema.sql"):
                archive.add(Path(tmp) / name, arcname=name)
    return {"file": str(path), "schema": schema, "members": len(public["memberships"]),
            "taken_at": manifest["exported_at"], "rows": counts}  # fmt: skip


@contextmanager
def archive_opened(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any], Path]]:
    """(manifest, public rows, path of the schema dump) of an archive, unpacked into a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(path, "r:gz") as archive:
        archive.extractall(tmp, filter="data")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        if manifest.get("version") != ARCHIVE_VERSION:
            raise ValueError(f"unsupported archive version {manifest.get('version')}")
        yield manifest, json.loads((Path(tmp) / "public.json").read_text()), Path(tmp) / "schema.sql"


def schema_load(dump: Path, source_schema: str, schema: str) -> None:
    """Replay an archive's schema dump as schema `schema`, in one transaction (psql --single-transaction)."""
    restored = dump.with_name("restore.sql")
    restored.write_text(replayable_dump(dump.read_text(), source_schema, schema))
    env, args = pg_connection_args()
    try:
        subprocess.run(
            [pg_tool("psql"), *args, "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--single-transaction",
             "--file", str(restored), "--dbname", str(connection.settings_dict["NAME"])],
            env=env, check=True, capture_output=True, timeout=3600,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"restoring the schema failed: {exc.stderr.decode()[-500:]}") from exc


class ImportFailed(Exception):
    pass


def import_organization(*, path: Path, slug: str | None = None, owner_email: str | None = None) -> dict[str, Any]:
    """Restore an export under a new organization id and schema name (into this or another database).
    Members are matched to existing users by email; missing users are created without a usable password (they
    set one through the normal password flow). API keys are restored unless the same key already exists here."""
    from public_app.services.organizations import slug_check_available, slug_validate

    with archive_opened(path) as (manifest, public, dump):
        source = public["organization"]
        new_slug = slug or source["slug"]
        slug_validate(new_slug)
        organization = Organization(name=source["name"], slug=new_slug, plan="free", website=source["website"],
                                    billing_email=source["billing_email"], timezone=source["timezone"],
                                    status=OrganizationStatus.PROVISIONING)  # fmt: skip
        organization.schema_name = Organization.schema_name_for(organization.uid)
        with transaction.atomic():
            slug_check_available(new_slug)
            organization.save()
            created_users = 0
            for member in public["memberships"]:
                user = User.objects.filter(email=member["email"]).first()
                if user is None:
                    user = User.objects.create_user(member["email"], None, name=member["name"])
                    created_users += 1
                Membership.objects.create(organization=organization, user=user, role=member["role"],
                                          deactivated_at=member.get("deactivated_at"))  # older archives: active
            skipped_invitations = 0
            for inv in public["invitations"]:
                # Into the database it came from, the pending invitation still exists: its link must keep one
                # meaning (the token hash is unique), so the copy gets none; the owner can invite again.
                if Invitation.objects.filter(token_hash=inv["token_hash"]).exists():
                    skipped_invitations += 1
                    continue
                Invitation.objects.create(organization=organization, **inv)
            skipped_keys = 0
            for key in public["api_keys"]:
                if ApiKey.objects.filter(key_hash=key["key_hash"]).exists():
                    skipped_keys += 1
                    continue
                ApiKey.objects.create(organization=organization, **key)
        try:
            schema_load(dump, manifest["source_schema"], organization.schema_name)
        except RuntimeError:
            organization.delete()
            raise
        # The dump carries no privileges (another database has other role names): the role is made here.
        with transaction.atomic():
            role_create(organization.schema_name)
        Organization.objects.filter(id=organization.id).update(migration_state=manifest.get("migration_state") or "")
        # An archive from an older release is brought to head before the organization goes active; if that fails
        # it stays failed, with the reason, for `orgs migrate --slugs` after a fix.
        migrated = None
        if manifest.get("migration_state") != migration_state():
            _, error, _ = migrate_one(organization.schema_name)
            if error is not None:
                Organization.objects.filter(id=organization.id).update(
                    status=OrganizationStatus.FAILED, status_reason=f"imported, then migrating failed: {error}"
                )
                raise ImportFailed(f"imported as {new_slug}, but migrating it to the code's state failed (left "
                                   f"failed): {error}")  # fmt: skip
            migrated = True
        Organization.objects.filter(id=organization.id).update(
            status=OrganizationStatus.ACTIVE, provisioned_at=timezone.now()
        )
    return {
        "slug": new_slug,
        "id": organization.uid,
        "schema": organization.schema_name,
        "members": len(public["memberships"]),
        "created_users": created_users,
        "skipped_api_keys": skipped_keys,
        "skipped_invitations": skipped_invitations,
        "migrated": bool(migrated),
    }
