"""One organization back to a snapshot of itself (an `orgs snapshot` / `orgs export` archive), side by side.

The snapshot's schema is loaded next to the live one, as `<schema>__restore` with a role of its own, in one
transaction; its row counts are compared with the snapshot's (they must match) and with the live schema's. Then
the two schemas trade names in one short transaction (`ALTER SCHEMA … RENAME` three times, and the same for their
roles): requests before it read the live data, requests after it read the restored data, none waits for more than
the rename. Nothing else is locked: not the other schemas, not the public tables beyond the organization's row.

After a swap the replaced schema stays staged under the `__restore` name, so a second swap undoes the restore and
`discard` drops it. A staged schema is not drift (`orgs check` lists it apart).

The organization's public rows (members, invitations, API keys) are not put back: a restore must never give
access back to someone it was taken from since the snapshot. What differs is reported (who the snapshot had as a
member and no longer is, and the other way round), for a person to decide.
"""

from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django_tenants.utils import quote_schema_name, schema_exists

from public_app.models import Membership, Organization
from public_app.services.fleet.archive import archive_opened, row_counts, schema_load
from public_app.services.fleet.rollout import applied_in
from public_app.services.provisioning import state_of
from public_app.tenant_roles import role_create, role_drop, role_rename

RESTORE_SUFFIX = "__restore"
# The swap waits this long at most for a lock (a long transaction reading the live schema); then it gives up and
# changes nothing, instead of making every request to the organization queue behind it.
SWAP_LOCK_TIMEOUT = "5s"


class RestoreError(Exception):
    """A restore that cannot go ahead as asked; nothing was changed."""


def staged_schema(organization: Organization) -> str:
    return organization.schema_name + RESTORE_SUFFIX


def restore_stage(*, organization: Organization, path: Path) -> dict[str, Any]:
    """Load the snapshot at `path` next to the organization's live schema and compare them (nothing is swapped)."""
    staged = staged_schema(organization)
    if schema_exists(staged):
        raise RestoreError(f"a restore of {organization.slug} is already staged ({staged}): swap or discard it first")
    with archive_opened(path) as (manifest, public, dump):
        if manifest.get("organization") != organization.uid:
            raise RestoreError(
                f"the snapshot is of organization {manifest.get('organization') or public['organization']['uid']}, "
                f"not of {organization.slug} ({organization.uid}); `orgs import` makes a new organization of it"
            )
        schema_load(dump, manifest["source_schema"], staged)
        with transaction.atomic():
            role_create(staged)
        snapshot_rows: dict[str, int] = manifest["rows"]
        snapshot_members = {m["email"]: m["role"] for m in public["memberships"]}
    return {
        "slug": organization.slug, "staged": staged, "taken_at": manifest["exported_at"],
        **restore_compare(organization, snapshot_rows), "members": _members_diff(organization, snapshot_members),
    }  # fmt: skip


def restore_compare(organization: Organization, snapshot_rows: dict[str, int] | None = None) -> dict[str, Any]:
    """Rows per table: the snapshot's (when given), the staged schema's and the live one's; `matches` says whether
    the staged schema holds exactly the snapshot's rows."""
    staged = row_counts(None, staged_schema(organization))
    live = row_counts(None, organization.schema_name)
    tables = sorted(set(staged) | set(live) | set(snapshot_rows or {}))
    rows = {t: {"snapshot": (snapshot_rows or {}).get(t), "staged": staged.get(t), "live": live.get(t)} for t in tables}
    matches = snapshot_rows is None or all(rows[t]["snapshot"] == rows[t]["staged"] for t in tables)
    return {"rows": rows, "matches": matches}


def _members_diff(organization: Organization, snapshot: dict[str, str]) -> dict[str, Any]:
    live = dict(Membership.objects.filter(organization=organization).values_list("user__email", "role"))
    return {
        "only_in_snapshot": sorted(set(snapshot) - set(live)),
        "only_live": sorted(set(live) - set(snapshot)),
        "role_differs": sorted(email for email in set(snapshot) & set(live) if snapshot[email] != live[email]),
    }


def restore_swap(*, organization: Organization) -> dict[str, Any]:
    """Trade the live schema and the staged one (names and roles) in one transaction; record the migration state
    of the schema that is live now. Run again, it undoes itself."""
    live, staged = organization.schema_name, staged_schema(organization)
    passing = organization.schema_name + "__swap"
    with transaction.atomic():
        # The organization's row first: a rollout records a schema's migration state under the same row lock
        # (public_app.services.fleet.rollout), so it never records the state of the schema swapped out.
        organization = Organization.objects.select_for_update().get(id=organization.id)
        if not schema_exists(staged):
            raise RestoreError(f"no restore of {organization.slug} is staged ({staged} does not exist)")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", [SWAP_LOCK_TIMEOUT])
            for old, new in ((live, passing), (staged, live), (passing, staged)):
                cursor.execute(f"ALTER SCHEMA {quote_schema_name(old)} RENAME TO {quote_schema_name(new)}")
                role_rename(old, new)
        organization.migration_state = state_of(applied_in(live))
        organization.save(update_fields=["migration_state"])
    return {"slug": organization.slug, "live": live, "staged": staged, "migration_state": organization.migration_state}


def restore_discard(*, organization: Organization) -> dict[str, Any]:
    """Drop the staged schema (a restore not swapped in, or the schema a swap replaced) and its role."""
    staged = staged_schema(organization)
    if not schema_exists(staged):
        raise RestoreError(f"no restore of {organization.slug} is staged ({staged} does not exist)")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {quote_schema_name(staged)} CASCADE")
        role_drop(staged)
    return {"slug": organization.slug, "dropped": staged}
