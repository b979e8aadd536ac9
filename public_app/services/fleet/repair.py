"""Repair: provision again, drop a schema, reconcile drift, purge now."""

import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from public_app import citus, errors
from public_app.models import (
    Organization,
    OrganizationStatus,
    SpareSchema,
)
from public_app.services.fleet.drift import drift_check
from public_app.services.provisioning import (
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
                                   "roles_dropped": [], "distributed": []}  # fmt: skip
    for slug in [*report.missing_schemas, *report.unprovisioned]:
        try:
            provision_again(organization=Organization.objects.get(slug=slug))
        except Exception:  # still failing: the final check below reports it, with its status_reason
            logger.warning("provisioning %s again failed", slug, exc_info=True)
            continue
        fixed["provisioned"].append(slug)
    for slug in sorted({*report.structure_differs, *report.missing_migrations}):
        schema = Organization.objects.get(slug=slug).schema_name
        _, error, _ = migrate_one(schema)
        if error is None:
            fixed["migrated"].append(slug)
    for slug in sorted({*report.missing_roles, *report.role_grants_missing, *report.extra_grants}):
        role_repair(Organization.objects.get(slug=slug).schema_name)
        fixed["roles_repaired"].append(slug)
    # Citus: a schema that is not distributed keeps its rows on the coordinator; distributing it moves them to a
    # worker (its tables are copied; writes to it wait meanwhile).
    for slug in report.not_distributed:
        citus.schema_distribute(Organization.objects.get(slug=slug).schema_name)
        fixed["distributed"].append(slug)
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
