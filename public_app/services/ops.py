"""Schema-level operations for DBAs and operators (`manage.py orgs ...`): inventory, drift, fleet migrations,
re-provisioning, purge, export and import. Each function returns plain data; the command prints it."""

import json
import logging
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from public_app.models import (
    ApiKey,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrganizationStatus,
    SpareSchema,
    User,
)
from public_app.pgtools import pg_connection_args, pg_tool
from public_app.services.provisioning import (
    migrate_one,
    migration_state,
    organization_provision,
    tenant_migrations,
)
from public_app.tenancy import (
    role_create,
    role_drop,
    role_drop_by_name,
    role_extra_grants,
    role_has_own_grants,
    role_repair,
    roles_with_prefix,
    tenant_role_name,
)

logger = logging.getLogger(__name__)
SCHEMA_PREFIX = "t\\_%"
ARCHIVE_VERSION = 1


# --- inventory -----------------------------------------------------------------------------------------------------


def _schema_sizes(schema: str | None = None) -> dict[str, int]:
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
    sizes = _schema_sizes(only)
    expected = migration_state()
    return [
        {
            "slug": org.slug,
            "id": org.uid,
            "schema": org.schema_name,
            "status": org.status,
            "members": org.members,
            "plan": org.plan,
            "schema_bytes": sizes.get(org.schema_name),
            "migrations": "current"
            if org.migration_state == expected
            else ("none" if not org.migration_state else "behind"),
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


# --- drift ---------------------------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    orphan_schemas: list[str] = field(default_factory=list)
    missing_schemas: list[str] = field(default_factory=list)  # slugs
    structure_differs: list[str] = field(default_factory=list)  # slugs
    missing_migrations: dict[str, list[str]] = field(default_factory=dict)
    extra_migrations: dict[str, list[str]] = field(default_factory=dict)
    # The database role boundary (public_app.tenancy): schemas whose role is missing or lacks grants on its own
    # schema, roles holding privileges elsewhere, and tenant roles left without a schema.
    missing_roles: list[str] = field(default_factory=list)  # slugs
    role_grants_missing: list[str] = field(default_factory=list)  # slugs
    extra_grants: dict[str, list[str]] = field(default_factory=dict)  # slug -> privileges outside its schema
    orphan_roles: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(asdict(self).values())


def _columns_by_schema(schemas: Iterable[str]) -> dict[str, set[tuple]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_schema, table_name, column_name, data_type, is_nullable, character_maximum_length
            FROM information_schema.columns WHERE table_schema = ANY(%s)
            """,
            [list(schemas)],
        )
        result: dict[str, set[tuple]] = {}
        for schema, *rest in cursor.fetchall():
            result.setdefault(schema, set()).add(tuple(rest))
    return result


def drift_check() -> DriftReport:
    """What `orgs check` reports: schemas and organizations that do not match each other, and schemas whose
    structure or migration records differ from the template's."""
    from public_app.services.provisioning import template_get

    template_get()  # make sure the template is at head
    report = DriftReport()
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [SCHEMA_PREFIX])
        existing = {row[0] for row in cursor.fetchall()}
    orgs = {
        org.schema_name: org
        for org in Organization.objects.exclude(status=OrganizationStatus.PROVISIONING).exclude(
            status=OrganizationStatus.FAILED
        )
    }
    every_org_schema = set(Organization.objects.values_list("schema_name", flat=True))
    spares = set(SpareSchema.objects.values_list("name", flat=True))  # ready-made, not orphans
    report.orphan_schemas = sorted(existing - every_org_schema - spares)
    report.missing_schemas = sorted(orgs[s].slug for s in set(orgs) - existing)
    present = sorted(set(orgs) & existing)
    template = settings.TENANT_TEMPLATE_SCHEMA
    columns = _columns_by_schema([*present, template])
    expected_columns = columns.get(template, set())
    expected = {f"{app}.{name}" for app, name in tenant_migrations()}
    for schema in present:
        slug = orgs[schema].slug
        if columns.get(schema, set()) != expected_columns:
            report.structure_differs.append(slug)
        with connection.cursor() as cursor:
            try:
                cursor.execute(f"SELECT app || '.' || name FROM {quote_schema_name(schema)}.django_migrations")
                applied = {row[0] for row in cursor.fetchall()}
            except Exception:
                applied = set()
        applied_tenant = {m for m in applied if m.split(".", 1)[0] in {a for a, _ in tenant_migrations()}}
        if expected - applied_tenant:
            report.missing_migrations[slug] = sorted(expected - applied_tenant)
        if applied_tenant - expected:
            report.extra_migrations[slug] = sorted(applied_tenant - expected)
    report.structure_differs.sort()
    _role_drift(report, {schema: orgs[schema].slug for schema in present}, existing)
    return report


def _role_drift(report: DriftReport, slugs_by_schema: dict[str, str], existing_schemas: set[str]) -> None:
    roles = roles_with_prefix()
    for schema, slug in sorted(slugs_by_schema.items(), key=lambda item: item[1]):
        if tenant_role_name(schema) not in roles:
            report.missing_roles.append(slug)
            continue
        if not role_has_own_grants(schema):
            report.role_grants_missing.append(slug)
        extra = role_extra_grants(schema)
        if extra:
            report.extra_grants[slug] = extra
    expected = {tenant_role_name(schema) for schema in existing_schemas}
    report.orphan_roles = sorted(roles - expected)


# --- fleet migrations ----------------------------------------------------------------------------------------------


def migrate_fleet(
    *, jobs: int = 1, force: bool = False, progress: Callable[[int, int, str, str | None], None] | None = None
) -> dict[str, Any]:
    """Bring every tenant schema to head, in parallel; schemas whose recorded state matches are skipped. Failures
    do not stop the run: they are all reported at the end."""
    from public_app.services.provisioning import template_get

    template_get()
    state = migration_state()
    candidates = Organization.objects.filter(status__in=[OrganizationStatus.ACTIVE, OrganizationStatus.DELETING])
    todo = list(
        (candidates if force else candidates.exclude(migration_state=state))
        .order_by("id")
        .values_list("schema_name", flat=True)
    )
    skipped = candidates.count() - len(todo)
    failures: dict[str, str] = {}
    done = 0
    if jobs <= 1 or len(todo) <= 1:
        results: Iterable[tuple[str, str | None, float]] = (migrate_one(schema) for schema in todo)
        for schema, error, _ in results:
            done += 1
            if error:
                failures[schema] = error
            if progress:
                progress(done, len(todo), schema, error)
    else:
        import multiprocessing

        from public_app import fleet_worker

        init_args = (os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"), connection.settings_dict["NAME"])
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=fleet_worker.init,
            initargs=init_args,
        ) as pool:  # fmt: skip
            futures = [pool.submit(fleet_worker.migrate_one, schema) for schema in todo]
            for future in as_completed(futures):
                schema, error, _ = future.result()
                done += 1
                if error:
                    failures[schema] = error
                if progress:
                    progress(done, len(todo), schema, error)
    return {"state": state, "migrated": len(todo) - len(failures), "skipped": skipped, "failed": failures}


# --- repair --------------------------------------------------------------------------------------------------------


def provision_again(*, organization: Organization) -> Organization:
    """Re-run provisioning for a failed or stuck organization (or an active one whose schema went missing)."""
    if organization.status in (OrganizationStatus.FAILED, OrganizationStatus.ACTIVE):
        Organization.objects.filter(id=organization.id).update(status=OrganizationStatus.PROVISIONING, status_reason="")
    return organization_provision(organization_id=organization.id)


def drop_schema(schema: str) -> None:
    if (
        not schema.startswith("t_")
        or Organization.objects.filter(schema_name=schema).exists()
        or SpareSchema.objects.filter(name=schema).exists()
    ):
        raise ValueError(f"refusing to drop {schema}: not an orphaned tenant schema")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(schema)} CASCADE")
        role_drop(schema)


def reconcile(*, drop_orphans: bool = False) -> dict[str, Any]:
    """Fix what `check` finds where it is safe: provision missing schemas, migrate drifting ones; drop orphaned
    schemas only when asked."""
    report = drift_check()
    fixed: dict[str, list[str]] = {"provisioned": [], "migrated": [], "dropped": [], "roles_repaired": [],
                                   "roles_dropped": []}  # fmt: skip
    for slug in report.missing_schemas:
        provision_again(organization=Organization.objects.get(slug=slug))
        fixed["provisioned"].append(slug)
    for slug in sorted({*report.structure_differs, *report.missing_migrations}):
        schema = Organization.objects.get(slug=slug).schema_name
        _, error, _ = migrate_one(schema)
        if error is None:
            fixed["migrated"].append(slug)
    for slug in sorted({*report.missing_roles, *report.role_grants_missing, *report.extra_grants}):
        role_repair(Organization.objects.get(slug=slug).schema_name)
        fixed["roles_repaired"].append(slug)
    # A tenant role without its schema can reach nothing; dropping it is always safe.
    for role in report.orphan_roles:
        role_drop_by_name(role)
        fixed["roles_dropped"].append(role)
    if drop_orphans:
        for schema in report.orphan_schemas:
            drop_schema(schema)
            fixed["dropped"].append(schema)
    return {"fixed": fixed, "left": asdict(drift_check())}


def purge_now(*, organization: Organization) -> bool:
    """Purge at once (ops): schedule the deletion with no grace period, then run the normal purge."""
    from public_app.services.organizations import organization_purge

    Organization.objects.filter(id=organization.id).update(
        status=OrganizationStatus.DELETING, purge_at=timezone.now() - timedelta(seconds=1),
        deleted_at=organization.deleted_at or timezone.now(),
    )  # fmt: skip
    return organization_purge(organization_id=organization.id)


# --- export / import -----------------------------------------------------------------------------------------------


def export_organization(*, organization: Organization, path: Path) -> dict[str, Any]:
    """One .tar.gz: the tenant schema (`pg_dump -n`, which locks only that schema's tables, so it works with
    thousands of schemas) and the organization's public rows."""
    env, args = pg_connection_args()
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "schema.sql"
        subprocess.run(
            [pg_tool("pg_dump"), *args, "--no-owner", "--no-privileges", "--schema", organization.schema_name,
             "--file", str(dump), str(connection.settings_dict["NAME"])],
            env=env, check=True, capture_output=True, timeout=3600,
        )  # fmt: skip
        memberships = Membership.objects.filter(organization=organization).select_related("user")
        public = {
            "organization": {k: getattr(organization, k) for k in (
                "uid", "name", "slug", "schema_name", "plan", "website", "billing_email", "timezone",
                "migration_state")},
            "memberships": [{"email": m.user.email, "name": m.user.name, "role": m.role} for m in memberships],
            "invitations": [
                {k: getattr(i, k) for k in ("email", "role", "token_salt", "token_hash", "token_version",
                                             "expires_in_days")} | {"expires_at": i.expires_at.isoformat()}
                for i in Invitation.objects.filter(organization=organization, status=InvitationStatus.PENDING)
            ],
            "api_keys": [
                {k: getattr(key, k) for k in ("name", "role", "prefix", "key_hash")}
                | {"expires_at": key.expires_at.isoformat() if key.expires_at else None}
                for key in ApiKey.objects.filter(organization=organization, revoked_at__isnull=True)
            ],
        }  # fmt: skip
        manifest = {
            "version": ARCHIVE_VERSION,
            "exported_at": timezone.now().isoformat(),
            "source_schema": organization.schema_name,
            "migration_state": organization.migration_state,
        }
        (Path(tmp) / "public.json").write_text(json.dumps(public, indent=1))
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=1))
        with tarfile.open(path, "w:gz") as archive:
            for name in ("manifest.json", "public.json", "schema.sql"):
                archive.add(Path(tmp) / name, arcname=name)
    return {"file": str(path), "schema": organization.schema_name, "members": len(public["memberships"])}


def rename_schema_in_dump(sql: str, old: str, new: str) -> str:
    """Point a plain-format pg_dump of one schema at another schema name. Only statements are rewritten; the rows
    inside COPY blocks are left byte for byte, so data that happens to contain the old name is untouched."""
    out: list[str] = []
    in_copy = False
    for line in sql.splitlines(keepends=True):
        if in_copy:
            out.append(line)
            if line.rstrip("\r\n") == "\\.":
                in_copy = False
            continue
        if line.startswith("COPY "):
            in_copy = True
        line = line.replace(f"{old}.", f"{new}.")
        line = line.replace(f"SCHEMA {old};", f"SCHEMA {new};").replace(f"SCHEMA {old} ", f"SCHEMA {new} ")
        out.append(line)
    return "".join(out)


def import_organization(*, path: Path, slug: str | None = None, owner_email: str | None = None) -> dict[str, Any]:
    """Restore an export under a new organization id and schema name (into this or another database).
    Members are matched to existing users by email; missing users are created without a usable password (they
    set one through the normal password flow). API keys are restored unless the same key already exists here."""
    from public_app.services.organizations import slug_check_available, slug_validate

    with tempfile.TemporaryDirectory() as tmp, tarfile.open(path, "r:gz") as archive:
        archive.extractall(tmp, filter="data")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        if manifest.get("version") != ARCHIVE_VERSION:
            raise ValueError(f"unsupported archive version {manifest.get('version')}")
        public = json.loads((Path(tmp) / "public.json").read_text())
        source = public["organization"]
        new_slug = slug or source["slug"]
        slug_validate(new_slug)
        organization = Organization(name=source["name"], slug=new_slug, plan="free", website=source["website"],
                                    billing_email=source["billing_email"], timezone=source["timezone"],
                                    status=OrganizationStatus.PROVISIONING)  # fmt: skip
        organization.schema_name = Organization.schema_name_for(organization.uid)
        sql = rename_schema_in_dump(
            (Path(tmp) / "schema.sql").read_text(), manifest["source_schema"], organization.schema_name
        )
        restored = Path(tmp) / "restore.sql"
        restored.write_text(sql)
        with transaction.atomic():
            slug_check_available(new_slug)
            organization.save()
            created_users = 0
            for member in public["memberships"]:
                user = User.objects.filter(email=member["email"]).first()
                if user is None:
                    user = User.objects.create_user(member["email"], None, name=member["name"])
                    created_users += 1
                Membership.objects.create(organization=organization, user=user, role=member["role"])
            for inv in public["invitations"]:
                Invitation.objects.create(organization=organization, **inv)
            skipped_keys = 0
            for key in public["api_keys"]:
                if ApiKey.objects.filter(key_hash=key["key_hash"]).exists():
                    skipped_keys += 1
                    continue
                ApiKey.objects.create(organization=organization, **key)
        env, args = pg_connection_args()
        try:
            subprocess.run(
                [pg_tool("psql"), *args, "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                 "--file", str(restored), "--dbname", str(connection.settings_dict["NAME"])],
                env=env, check=True, capture_output=True, timeout=3600,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            organization.delete()
            raise RuntimeError(f"restoring the schema failed: {exc.stderr.decode()[-500:]}") from exc
        # The dump carries no privileges (another database has other role names): the role is made here.
        with transaction.atomic():
            role_create(organization.schema_name)
        Organization.objects.filter(id=organization.id).update(
            status=OrganizationStatus.ACTIVE, migration_state=manifest.get("migration_state") or "",
            provisioned_at=timezone.now(),
        )  # fmt: skip
    return {
        "slug": new_slug,
        "id": organization.uid,
        "schema": organization.schema_name,
        "members": len(public["memberships"]),
        "created_users": created_users,
        "skipped_api_keys": skipped_keys,
    }
