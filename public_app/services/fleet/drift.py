"""Drift: schemas, structure, migration records and database roles, compared with the template and with the
organizations table."""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from public_app import citus
from public_app.models import (
    Organization,
    OrganizationStatus,
    SchemaRecord,
    SpareSchema,
)
from public_app.services.fleet import SCHEMA_PREFIX
from public_app.services.fleet.catalog import reference_catalogs, schema_differences
from public_app.services.fleet.restore import RESTORE_SUFFIX
from public_app.services.fleet.rollout import tenant_labels
from public_app.services.provisioning import (
    tenant_migrations,
)
from public_app.tenancy import tenant_role_name
from public_app.tenant_roles import roles_extra_grants, roles_missing_own_grants, roles_with_prefix

# A provisioning job retries for a few minutes at most (PROVISION_MAX_RETRIES with backoff); older than this, an
# organization still provisioning is stuck.
STUCK_AFTER = timedelta(minutes=15)


@dataclass
class DriftReport:
    orphan_schemas: list[str] = field(default_factory=list)
    missing_schemas: list[str] = field(default_factory=list)  # slugs of active or deleting organizations
    # Organizations without a schema that are not being provisioned right now: failed, or stuck in provisioning
    # for longer than STUCK_AFTER (a job that should have finished long ago).
    unprovisioned: list[str] = field(default_factory=list)  # slugs
    structure_differs: list[str] = field(default_factory=list)  # slugs
    # slug -> each object that differs from what its recorded migrations define, with the statement that fixes it
    differences: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    missing_migrations: dict[str, list[str]] = field(default_factory=dict)
    records_lost: list[str] = field(default_factory=list)  # slugs: every object is there, some records are not
    extra_migrations: dict[str, list[str]] = field(default_factory=dict)
    # The database role boundary (public_app.tenancy): schemas whose role is missing or lacks grants on its own
    # schema, roles holding privileges elsewhere, and tenant roles left without a schema.
    missing_roles: list[str] = field(default_factory=list)  # slugs
    role_grants_missing: list[str] = field(default_factory=list)  # slugs
    missing_grants: dict[str, list[str]] = field(default_factory=dict)  # slug -> what its role lacks, exactly
    extra_grants: dict[str, list[str]] = field(default_factory=dict)  # slug -> privileges outside its schema
    orphan_roles: list[str] = field(default_factory=list)
    # On a Citus coordinator (public_app.citus): schemas that are not distributed (their rows would live on the
    # coordinator), and tables of a distributed schema that Citus does not know (created inside a function).
    not_distributed: list[str] = field(default_factory=list)  # slugs
    undistributed_tables: dict[str, list[str]] = field(default_factory=dict)  # slug -> tables

    # Not drift: restores staged next to their organization's schema, to swap or discard (listed by `orgs check`),
    # and schemas under the tenant prefix that the service never named (SchemaRecord): a DBA's scratch schema, or
    # one whose organization was gone before records were kept. No fleet command touches them.
    staged_restores: list[str] = field(default_factory=list)
    unknown_schemas: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(value for key, value in asdict(self).items() if key not in NOT_DRIFT)


NOT_DRIFT = {"staged_restores", "unknown_schemas"}


def applied_migrations(schemas: Iterable[str], labels: frozenset[str], chunk: int = 200) -> dict[str, frozenset]:
    """The tenant migrations recorded in each schema, a few hundred schemas per query (no records table: empty)."""
    names = sorted(set(schemas))
    result: dict[str, frozenset] = {name: frozenset() for name in names}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations' AND c.relkind = 'r' AND n.nspname = ANY(%s)",
            [names],
        )
        with_records = sorted(row[0] for row in cursor.fetchall())
        found: dict[str, set] = {}
        for start in range(0, len(with_records), chunk):
            union = " UNION ALL ".join(
                f"SELECT %s, app, name FROM {quote_schema_name(schema)}.django_migrations WHERE app = ANY(%s)"
                for schema in with_records[start:start + chunk]
            )
            params: list = []
            for schema in with_records[start:start + chunk]:
                params += [schema, sorted(labels)]
            cursor.execute(union, params)
            for schema, app, name in cursor.fetchall():
                found.setdefault(schema, set()).add((app, name))
    result.update({schema: frozenset(nodes) for schema, nodes in found.items()})
    return result


def drift_check() -> DriftReport:
    """What `orgs check` reports: schemas and organizations that do not match each other, schemas whose objects
    differ from what their recorded migrations define (public_app.services.fleet.catalog), migration records
    missing or unknown, and the database roles. Read-only: the comparison's reference is rolled back."""
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
    # A restore staged next to its organization's schema (fleet.restore) is work in progress, not an orphan.
    staged = {s for s in existing if s.endswith(RESTORE_SUFFIX) and s.removesuffix(RESTORE_SUFFIX) in every_org_schema}
    report.staged_restores = sorted(staged)
    unclaimed = existing - every_org_schema - spares - staged
    ours = set(SchemaRecord.objects.filter(schema_name__in=unclaimed).values_list("schema_name", flat=True))
    report.orphan_schemas = sorted(ours)
    report.unknown_schemas = sorted(unclaimed - ours)
    report.missing_schemas = sorted(orgs[s].slug for s in set(orgs) - existing)
    stuck_before = timezone.now() - STUCK_AFTER
    report.unprovisioned = sorted(
        org.slug
        for org in Organization.objects.filter(
            Q(status=OrganizationStatus.FAILED) | Q(status=OrganizationStatus.PROVISIONING, created_at__lt=stuck_before)
        )
        if org.schema_name not in existing
    )
    present = sorted(set(orgs) & existing)
    labels = tenant_labels()
    expected = {f"{app}.{name}" for app, name in tenant_migrations()}
    applied = applied_migrations(present, labels)
    for schema in present:
        slug = orgs[schema].slug
        recorded = {f"{app}.{name}" for app, name in applied[schema]}
        if expected - recorded:
            report.missing_migrations[slug] = sorted(expected - recorded)
        if recorded - expected:
            report.extra_migrations[slug] = sorted(recorded - expected)
    head = frozenset(tenant_migrations())
    references = reference_catalogs({*applied.values(), head}, labels)
    # A schema that has every object of head but lacks records of some migrations lost only the records: running
    # those migrations would fail ("already exists"); recording them is the fix.
    lacking = {schema: head for schema in present if orgs[schema].slug in report.missing_migrations}
    lost_records_only = set(lacking) - set(schema_differences(lacking, references))
    report.records_lost = sorted(orgs[schema].slug for schema in lost_records_only)
    for schema, found in schema_differences(applied, references).items():
        if schema in lost_records_only:
            continue
        report.structure_differs.append(orgs[schema].slug)
        report.differences[orgs[schema].slug] = [{"object": str(d), "fix": d.fix} for d in found]
    report.structure_differs.sort()
    _role_drift(report, {schema: orgs[schema].slug for schema in present}, existing)
    if citus.enabled():
        distributed = citus.distributed_schemas()
        report.not_distributed = sorted(orgs[schema].slug for schema in present if schema not in distributed)
        loose = citus.undistributed_tables([schema for schema in present if schema in distributed])
        report.undistributed_tables = {orgs[schema].slug: tables for schema, tables in sorted(loose.items())}
    return report


def _role_drift(report: DriftReport, slugs_by_schema: dict[str, str], existing_schemas: set[str]) -> None:
    roles = roles_with_prefix()
    lacking, extras = roles_missing_own_grants(), roles_extra_grants()  # every role at once, not one by one
    for schema, slug in sorted(slugs_by_schema.items(), key=lambda item: item[1]):
        if tenant_role_name(schema) not in roles:
            report.missing_roles.append(slug)
            continue
        if schema in lacking:
            report.role_grants_missing.append(slug)
            report.missing_grants[slug] = lacking[schema]
        if extras.get(schema):
            report.extra_grants[slug] = extras[schema]
    expected = {tenant_role_name(schema) for schema in existing_schemas}
    report.orphan_roles = sorted(roles - expected)
