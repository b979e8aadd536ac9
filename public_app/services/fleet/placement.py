"""Placement on a Citus cluster: where organizations live, moving one, spreading them evenly (public_app.citus)."""

from collections.abc import Callable
from typing import Any

from public_app import citus
from public_app.models import Organization, OrganizationStatus


class NotACluster(Exception):
    """The database is plain PostgreSQL: there is nowhere to move an organization to."""


def _require_cluster() -> None:
    if not citus.enabled():
        raise NotACluster("this database is not a Citus coordinator: organizations have nowhere to move")


def nodes() -> list[dict[str, Any]]:
    _require_cluster()
    return [{"node": n.address, "organizations": n.schemas, "bytes": n.bytes} for n in citus.worker_nodes()]


def organization_move(
    *,
    organization: Organization,
    to: str,
    block_writes: bool = False,
    progress: Callable[[citus.MoveProgress], None] | None = None,
) -> dict[str, Any]:
    """Move one organization's schema to the worker `to` (HOST:PORT). Its API keeps answering throughout unless
    `block_writes` (then writes wait until the copy is done)."""
    _require_cluster()
    if organization.status not in (OrganizationStatus.ACTIVE, OrganizationStatus.DELETING):
        raise ValueError(f"{organization.slug} is {organization.status}: only a provisioned organization can move")
    host, port = citus.parse_node(to)
    placement = citus.placements([organization.schema_name]).get(organization.schema_name)
    if placement is None:
        raise ValueError(f"{organization.schema_name} is not a distributed schema (see `orgs check`)")
    result = {"slug": organization.slug, "schema": organization.schema_name, "from": placement.node,
              "to": f"{host}:{port}", "bytes": placement.bytes}  # fmt: skip
    if placement.node == result["to"]:
        return {**result, "moved": False, "seconds": 0.0}
    seconds = citus.schema_move(organization.schema_name, host, port, block_writes=block_writes, progress=progress)
    return {**result, "moved": True, "seconds": round(seconds, 2)}


def rebalance(
    *,
    dry_run: bool = False,
    block_writes: bool = False,
    on_move: Callable[[dict[str, Any]], None] | None = None,
    progress: Callable[[citus.MoveProgress], None] | None = None,
) -> dict[str, Any]:
    """Even out the workers with the moves Citus' rebalancer plans, one organization at a time (each move
    non-blocking unless `block_writes`). Schemas that are not organizations (the template, spares) move too."""
    _require_cluster()
    plan = citus.rebalance_plan()
    slugs = dict(Organization.objects.filter(schema_name__in=[m.schema for m in plan]).values_list("schema_name",
                                                                                                  "slug"))  # fmt: skip
    sizes = citus.placements([m.schema for m in plan])
    moves = [
        {"slug": slugs.get(m.schema), "schema": m.schema, "from": m.source, "to": m.target,
         "bytes": sizes[m.schema].bytes if m.schema in sizes else m.bytes}
        for m in plan
    ]  # fmt: skip
    done = []
    if not dry_run:
        for planned, move in zip(plan, moves, strict=True):
            host, _, port = planned.target.rpartition(":")
            seconds = citus.schema_move(planned.schema, host, int(port), block_writes=block_writes, progress=progress)
            done.append({**move, "seconds": round(seconds, 2)})
            if on_move:
                on_move(done[-1])
    return {"planned": moves, "moved": done, "nodes": nodes()}
