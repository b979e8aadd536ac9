"""Fleet migrations: every tenant schema migrated, in parallel worker processes
(public_app.services.fleet.worker), continuing past failures."""

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from django.db import connection, transaction

from public_app.models import (
    Organization,
    OrganizationStatus,
)
from public_app.services.provisioning import (
    migrate_one,
    migration_state,
)


def migrate_fleet(
    *,
    jobs: int = 1,
    force: bool = False,
    progress: Callable[[int, int, str, str | None], None] | None = None,
    slugs: list[str] | None = None,
    cohort: int | None = None,
    percent: float | None = None,
    stop_after_failures: int | None = None,
    plan_only: bool = False,
) -> dict[str, Any]:
    """Bring every tenant schema to head; schemas whose recorded state matches are skipped. Schemas at the same
    recorded state get the SQL rendered once for them (public_app.services.fleet.rollout), over `jobs`
    connections; what cannot be rendered (RunPython, a schema whose records differ) runs Django's executor, in
    `jobs` processes. `force` runs Django's executor on every schema. Failures do not stop the run: they are all
    reported at the end.

    A rollout in steps: `slugs` limits the run to those organizations; `cohort` to the first N organizations that
    are behind, `percent` to the first P % of them (at least one), oldest first, so canaries go first and each
    further run takes the next ones; `stop_after_failures` stops starting schemas once K have failed. Schemas done
    are recorded as they finish, so a stopped or interrupted run resumes where it stopped."""
    from public_app.services.fleet.rollout import rollout
    from public_app.services.provisioning import template_get

    state = migration_state()
    candidates = Organization.objects.filter(status__in=[OrganizationStatus.ACTIVE, OrganizationStatus.DELETING])
    if slugs:
        unknown = sorted(set(slugs) - set(candidates.filter(slug__in=slugs).values_list("slug", flat=True)))
        if unknown:
            raise ValueError(f"no active or deleting organization with slug {', '.join(unknown)}")
        candidates = candidates.filter(slug__in=slugs)
    behind = list(
        (candidates if force else candidates.exclude(migration_state=state))
        .order_by("id")
        .values_list("schema_name", "migration_state")
    )
    todo = behind
    if cohort is not None:
        todo = todo[: max(0, cohort)]
    if percent is not None:
        todo = todo[: max(1, math.ceil(len(behind) * percent / 100))] if behind else []
    skipped = candidates.count() - len(behind)
    if plan_only:
        return {"state": state, "plan": pending_by_organization([schema for schema, _ in todo]), "selected": len(todo),
                "skipped": skipped}  # fmt: skip
    if todo:
        # The template goes to head with the fleet, so that the next organization is provisioned at head at once.
        # Not on a run with nothing to do: building it dumps the template with pg_dump, which reads the catalog of
        # the whole database (9 of the 11 s of a no-op run over 10,000 schemas).
        template_get()
    done = 0
    failed_so_far = 0
    stop = threading.Event()

    def tick(schema: str, error: str | None) -> None:
        nonlocal done, failed_so_far
        done += 1
        if error:
            failed_so_far += 1
            if stop_after_failures is not None and failed_so_far >= stop_after_failures:
                stop.set()
        if progress:
            progress(done, len(todo), schema, error)

    def slow(schemas: list[str]) -> dict[str, str]:
        return _migrate_with_django(schemas, jobs=jobs, tick=tick, stop=stop)

    if force:
        failures, rendered, slowly = slow([schema for schema, _ in todo]), 0, done
    else:
        result = rollout(todo, state, jobs=jobs, slow=slow, progress=tick, stop=stop)
        failures, rendered, slowly = result["failed"], result["rendered"], result["slow"]
    return {"state": state, "migrated": done - len(failures), "skipped": skipped, "failed": failures,
            "rendered": rendered, "executor": slowly, "selected": len(todo), "stopped": stop.is_set(),
            "behind": candidates.exclude(migration_state=state).count()}  # fmt: skip


def _migrate_with_django(
    schemas: list[str], *, jobs: int, tick: Callable[[str, str | None], None], stop: threading.Event
) -> dict[str, str]:
    """Django's executor on each schema (in `jobs` worker processes): the slow, always-correct way."""
    failures: dict[str, str] = {}
    if jobs <= 1 or len(schemas) <= 1:
        for schema in schemas:
            if stop.is_set():
                break
            _, error, _ = migrate_one(schema)
            if error:
                failures[schema] = error
            tick(schema, error)
        return failures
    import multiprocessing

    from public_app.services.fleet import worker as fleet_worker

    init_args = (os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"), connection.settings_dict["NAME"])
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=fleet_worker.init,
        initargs=init_args,
    ) as pool:  # fmt: skip
        futures = [pool.submit(fleet_worker.migrate_one, schema) for schema in schemas]
        for future in as_completed(futures):
            if future.cancelled():
                continue
            schema, error, _ = future.result()
            if error:
                failures[schema] = error
            tick(schema, error)
            if stop.is_set():
                for pending in futures:
                    pending.cancel()  # those not started yet
    return failures


def pending_by_organization(schemas: list[str]) -> dict[str, list[str]]:
    """What `orgs migrate --plan` shows: for each organization, the tenant migrations it would run, in order."""
    from django.db.migrations.loader import MigrationLoader

    from public_app.services.fleet.drift import applied_migrations
    from public_app.services.fleet.rollout import tenant_labels

    labels = tenant_labels()
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    order = _tenant_order(graph, labels)
    applied = applied_migrations(schemas, labels)
    slugs = dict(Organization.objects.filter(schema_name__in=schemas).values_list("schema_name", "slug"))
    return {slugs[schema]: [f"{app}.{name}" for app, name in order if (app, name) not in applied[schema]]
            for schema in schemas}  # fmt: skip


def _tenant_order(graph: Any, labels: frozenset[str]) -> list[tuple[str, str]]:
    order: list[tuple[str, str]] = []
    for leaf in sorted(node for node in graph.leaf_nodes() if node[0] in labels):
        order += [node for node in graph.forwards_plan(leaf) if node[0] in labels and node not in order]
    return order


def migration_fake(*, slugs: list[str], migration: str) -> dict[str, list[str]]:
    """Record `migration` (APP.NAME) and the tenant migrations it depends on as applied in these organizations'
    schemas without running them: for a schema whose objects are already there (see `orgs check`). Returns what was
    recorded per organization; an organization whose records then match the code's is marked current."""
    from django.db.migrations.loader import MigrationLoader
    from django_tenants.utils import quote_schema_name

    from public_app.services.fleet.drift import applied_migrations
    from public_app.services.fleet.rollout import tenant_labels

    app, _, name = migration.partition(".")
    labels = tenant_labels()
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    if app not in labels or (app, name) not in graph.nodes:
        raise ValueError(f"no tenant migration {migration!r} (APP.NAME, e.g. agents.0001_initial)")
    needed = [node for node in graph.forwards_plan((app, name)) if node[0] in labels]
    organizations = list(Organization.objects.filter(slug__in=slugs))
    unknown = sorted(set(slugs) - {o.slug for o in organizations})
    if unknown:
        raise ValueError(f"no organization with slug {', '.join(unknown)}")
    applied = applied_migrations([o.schema_name for o in organizations], labels)
    head = {node for node in graph.nodes if node[0] in labels}
    recorded: dict[str, list[str]] = {}
    for organization in organizations:
        missing = [node for node in needed if node not in applied[organization.schema_name]]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {quote_schema_name(organization.schema_name)}.django_migrations (app, name, applied) "
                "VALUES (%s, %s, now())",
                missing,
            )
            if head <= set(applied[organization.schema_name]) | set(missing):
                Organization.objects.filter(id=organization.id).update(migration_state=migration_state())
        recorded[organization.slug] = [f"{a}.{n}" for a, n in missing]
    return recorded
