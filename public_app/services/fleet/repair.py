"""Repair: provision again, drop a schema, reconcile drift, purge now."""

import logging
import os
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from public_app import citus, errors
from public_app.models import (
    Organization,
    OrganizationStatus,
    SchemaRecord,
    SpareSchema,
)
from public_app.pgtools import pg_connection_args, pg_tool
from public_app.services.fleet.drift import DriftReport, drift_check
from public_app.services.fleet.inventory import schema_sizes, table_row_counts
from public_app.services.provisioning import (
    error_summary,
    migrate_one,
    organization_provision,
)
from public_app.tenant_roles import role_drop, role_drop_by_name, role_repair

logger = logging.getLogger(__name__)


def provision_again(*, organization: Organization) -> Organization:
    """Re-run provisioning for a failed or stuck organization (or an active one whose schema went missing)."""
    if organization.status in (OrganizationStatus.FAILED, OrganizationStatus.ACTIVE):
        Organization.objects.filter(id=organization.id).update(status=OrganizationStatus.PROVISIONING, status_reason="")
    provisioned = organization_provision(organization_id=organization.id)
    if provisioned is None:  # deleted meanwhile
        raise errors.NotFound("Organization not found.")
    return provisioned


def drop_schema(schema: str) -> None:
    """Drop an orphaned schema of ours (recorded in SchemaRecord, no organization, not a spare) and its role."""
    if (
        not SchemaRecord.objects.filter(schema_name=schema).exists()
        or Organization.objects.filter(schema_name=schema).exists()
        or SpareSchema.objects.filter(name=schema).exists()
    ):
        raise ValueError(f"refusing to drop {schema}: not an orphaned schema of ours")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(schema)} CASCADE")
        role_drop(schema)


@dataclass
class Step:
    """One change `reconcile` would make: `action` on `target` (a slug, a schema or a role), and why."""

    action: str  # provision | migrate | record_migrations | repair_role | distribute | drop_role | drop_orphan
    target: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReconcilePlan:
    steps: list[Step] = field(default_factory=list)
    # What no command should fix on its own: each with the problem and the command a person runs after looking.
    needs_human: list[dict[str, str]] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # schemas that are not ours (never touched)


def schema_details(schema: str) -> dict[str, Any]:
    """What dropping a schema would lose: its size and rows (per table, those that have some)."""
    rows = {table: count for table, count in table_row_counts(schema).items() if table != "django_migrations"}
    return {"bytes": schema_sizes(schema).get(schema, 0), "rows": sum(rows.values()),
            "rows_by_table": {table: count for table, count in rows.items() if count}}  # fmt: skip


def orphan_details(schema: str) -> dict[str, Any]:
    """What dropping an orphan would lose: its former organization, size and rows per table."""
    record = SchemaRecord.objects.filter(schema_name=schema).first()
    former = None if record is None else {"slug": record.slug, "uid": record.organization_uid,
                                          "id": record.organization_id}  # fmt: skip
    return {"former_organization": former, **schema_details(schema)}


def reconcile_plan(*, drop_orphans: bool = False) -> ReconcilePlan:
    """What `orgs reconcile` would do about what `check` finds (changes nothing). Only what is safe and
    mechanical becomes a step; the rest is listed with the command that fixes it once a person has looked."""
    report = drift_check()
    plan = ReconcilePlan(left_alone=report.unknown_schemas)
    human = plan.needs_human.append
    for slug in report.unprovisioned:  # failed or stuck: never had data
        plan.steps.append(Step("provision", slug, "failed or stuck in provisioning, without a schema"))
    for slug in report.missing_schemas:
        human({"target": slug, "problem": "its schema is missing (an active organization: its data is gone)",
               "command": f"orgs restore {slug} --from SNAPSHOT, or orgs reattach SCHEMA --slug {slug}, "
                          f"or (starting empty) orgs provision {slug} --empty"})  # fmt: skip
    for slug, names in report.missing_migrations.items():
        if slug not in report.records_lost:
            plan.steps.append(Step("migrate", slug, f"{len(names)} migration(s) not applied", {"migrations": names}))
        else:  # what they create is there (running them would fail on "already exists"): only the records are lost
            plan.steps.append(Step("record_migrations", slug, f"its structure is complete but {len(names)} "
                                   "migration record(s) are missing", {"migrations": names}))  # fmt: skip
    for slug in report.structure_differs:
        if slug not in report.missing_migrations:
            human({"target": slug, "problem": "its structure differs from what its migrations define",
                   "command": "orgs check (shows each difference and its fix)"})  # fmt: skip
    for slug, names in report.extra_migrations.items():
        human({"target": slug, "problem": f"records migrations the code does not have: {', '.join(names)}",
               "command": f"orgs migrate --slug {slug} --plan (a code rollback? deploy the code that has them)"})
    for slug in sorted({*report.missing_roles, *report.role_grants_missing, *report.extra_grants}):
        plan.steps.append(Step("repair_role", slug, "its database role is missing, lacks grants or has others",
                               {"extra_grants": report.extra_grants.get(slug, [])}))  # fmt: skip
    # Citus: a schema that is not distributed keeps its rows on the coordinator; distributing it moves them to a
    # worker (its tables are copied; writes to it wait meanwhile).
    for slug in report.not_distributed:
        plan.steps.append(Step("distribute", slug, "not distributed: its rows live on the coordinator"))
    for slug, tables in report.undistributed_tables.items():
        human({"target": slug, "problem": f"tables Citus does not know: {', '.join(tables)}",
               "command": "recreate them outside a function, or drop them"})
    for role in report.orphan_roles:  # a tenant role without its schema can reach nothing
        plan.steps.append(Step("drop_role", role, "a tenant role without its schema"))
    for schema in report.orphan_schemas:
        details = orphan_details(schema)
        former = details["former_organization"]
        if drop_orphans:
            plan.steps.append(Step("drop_orphan", schema, "a schema of ours without its organization", details))
        else:
            human({"target": schema, "problem": f"a schema of ours whose organization ({former and former['slug']}) "
                   f"is gone: {details['rows']} rows, {details['bytes']} bytes",
                   "command": f"orgs reattach {schema} --slug {former and former['slug']} (bring it back), or "
                              f"orgs reconcile --drop-orphans --apply (exported first, then dropped)"})  # fmt: skip
    return plan


def schema_backup(schema: str, directory: Path) -> Path:
    """pg_dump of one schema (custom format: `pg_restore --dbname DB FILE` recreates it, as an orphan that `orgs
    reattach` gives back to an organization with its role and grants), readable by its owner only, before anything
    drops it. Without owners or privileges: the schema's role goes with it, and a restore must not need it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{schema}-{timezone.now():%Y%m%dT%H%M%S%fZ}.dump"
    env, args = pg_connection_args()
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    subprocess.run(
        [pg_tool("pg_dump"), *args, "--format", "custom", "--no-owner", "--no-privileges", "--schema", schema,
         "--file", str(path),
         str(connection.settings_dict["NAME"])],
        env=env, check=True, capture_output=True, timeout=3600,
    )  # fmt: skip
    return path


def _step_run(step: Step, backup_dir: Path | None) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    if step.action == "provision":
        provision_again(organization=Organization.objects.get(slug=step.target))
    elif step.action == "migrate":
        _, error, _ = migrate_one(Organization.objects.get(slug=step.target).schema_name)
        if error is not None:
            raise RuntimeError(error)
    elif step.action == "record_migrations":
        schema = quote_schema_name(Organization.objects.get(slug=step.target).schema_name)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {schema}.django_migrations (app, name, applied) VALUES (%s, %s, now())",
                [name.split(".", 1) for name in step.details["migrations"]],
            )
    elif step.action == "repair_role":
        role_repair(Organization.objects.get(slug=step.target).schema_name)
    elif step.action == "distribute":
        citus.schema_distribute(Organization.objects.get(slug=step.target).schema_name)
    elif step.action == "drop_role":
        role_drop_by_name(step.target)
    elif step.action == "drop_orphan":
        if backup_dir is not None:
            outcome["backup"] = str(schema_backup(step.target, backup_dir))
        drop_schema(step.target)
    return outcome


def _still_wrong(step: Step, report: DriftReport) -> bool:
    """Whether what `step` was to fix is still reported."""
    if step.action == "provision":
        return step.target in report.unprovisioned or step.target in report.missing_schemas
    if step.action in ("migrate", "record_migrations"):
        return step.target in {*report.missing_migrations, *report.records_lost, *report.structure_differs}
    if step.action == "repair_role":
        return step.target in {*report.missing_roles, *report.role_grants_missing, *report.extra_grants}
    if step.action == "distribute":
        return step.target in report.not_distributed
    if step.action == "drop_role":
        return step.target in report.orphan_roles
    return step.target in report.orphan_schemas


def reconcile_apply(plan: ReconcilePlan, *, backup_dir: Path | None) -> dict[str, Any]:
    """Run the plan's steps, each on its own; a step counts as done only when `check` no longer reports what it
    was to fix. A failing step is reported with its error, and the others go on. An orphan is exported to
    `backup_dir` before it is dropped (None: not exported; the caller asked for --no-backup)."""
    done, failed, outcomes = [], [], {}
    for step in plan.steps:
        try:
            outcomes[(step.action, step.target)] = _step_run(step, backup_dir)
        except Exception as exc:
            logger.warning("reconcile: %s %s failed: %s", step.action, step.target, error_summary(exc))
            failed.append({**asdict(step), "error": error_summary(exc)})
    after = drift_check()
    for step in plan.steps:
        if (step.action, step.target) not in outcomes:
            continue
        entry = {**asdict(step), **outcomes[(step.action, step.target)]}
        if _still_wrong(step, after):
            failed.append({**entry, "error": "ran, but check still reports it"})
        else:
            done.append(entry)
    return {"done": done, "failed": failed, "needs_human": plan.needs_human, "left": asdict(after),
            "clean": after.clean}  # fmt: skip


def orphan_reattach(*, schema: str, slug: str, owner_email: str | None = None) -> Organization:
    """Give an orphaned schema of ours back to an organization: `slug`'s, when it exists and has lost its schema,
    or a new organization `slug` owned by `owner_email`. The schema is renamed to the organization's schema name
    with its role, then provisioning completes it (migrations, grants) and marks it active."""
    from public_app.models import User
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import schema_exists
    from public_app.tenant_roles import role_exists, role_rename

    if schema not in drift_check().orphan_schemas:
        raise ValueError(f"{schema} is not an orphaned schema of ours (see orgs check)")
    with transaction.atomic():
        organization = Organization.objects.select_for_update().filter(slug=slug).first()
        if organization is None:
            owner = User.objects.filter(email__iexact=owner_email or "").first()
            if owner is None:
                raise ValueError(f"no organization {slug!r}: --owner EMAIL (an existing user) creates it")
            organization = organization_create(user=owner, name=slug, slug=slug)
        elif schema_exists(organization.schema_name):
            raise ValueError(f"{slug} has its schema ({organization.schema_name}); restore into it instead")
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER SCHEMA {quote_schema_name(schema)} RENAME TO {quote_schema_name(organization.schema_name)}"
            )
        if role_exists(schema):
            role_rename(schema, organization.schema_name)
        Organization.objects.filter(id=organization.id).update(status=OrganizationStatus.FAILED, migration_state="")
    organization.refresh_from_db()
    return provision_again(organization=organization)


def purge_now(*, organization: Organization) -> bool:
    """Purge at once (ops): schedule the deletion with no grace period, then run the normal purge."""
    from public_app.services.organizations import organization_purge

    Organization.objects.filter(id=organization.id).update(
        status=OrganizationStatus.DELETING, purge_at=timezone.now() - timedelta(seconds=1),
        deleted_at=organization.deleted_at or timezone.now(),
    )  # fmt: skip
    return organization_purge(organization_id=organization.id)


def cache_flush(*, organization: Organization | None = None) -> dict[str, Any]:
    """Make a fix made in SQL visible now instead of when cached lookups expire (LOOKUP_CACHE_TIMEOUT): one
    organization's entries (the organization by its slug, every membership in it, its API keys), or every cached
    lookup. Each process's memo is checked against the cache on every request, so it follows."""
    from public_app.cache import invalidate_matching
    from public_app.models import ApiKey
    from public_app.selectors import (
        api_key_cache_key,
        membership_cache_key,
        organization_cache_key,
        token_cache_key,
        user_cache_key,
    )

    if organization is None:
        prefixes = [organization_cache_key(""), membership_cache_key(0, 0).removesuffix("0:0"), api_key_cache_key(""),
                    token_cache_key(""), user_cache_key(0).removesuffix("0")]  # fmt: skip
    else:  # memberships by the organization's id: rows deleted by hand are no longer there to name their keys
        keys = ApiKey.objects.filter(organization=organization).values_list("key_hash", flat=True)
        prefixes = [organization_cache_key(organization.slug),
                    membership_cache_key(organization.id, 0).removesuffix("0"),
                    *(api_key_cache_key(key_hash) for key_hash in keys)]  # fmt: skip
    count = invalidate_matching(prefixes)
    return {"flushed": organization.slug if organization else "all", "entries": count}
