"""Fleet migrations: every tenant schema migrated, in parallel worker processes
(public_app.services.fleet.worker), continuing past failures."""

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from django.db import connection

from public_app.models import (
    Organization,
    OrganizationStatus,
)
from public_app.services.provisioning import (
    migrate_one,
    migration_state,
)


def migrate_fleet(
    *, jobs: int = 1, force: bool = False, progress: Callable[[int, int, str, str | None], None] | None = None
) -> dict[str, Any]:
    """Bring every tenant schema to head; schemas whose recorded state matches are skipped. Schemas at the same
    recorded state get the SQL rendered once for them (public_app.services.fleet.rollout), over `jobs`
    connections; what cannot be rendered (RunPython, a schema whose records differ) runs Django's executor, in
    `jobs` processes. `force` runs Django's executor on every schema. Failures do not stop the run: they are all
    reported at the end."""
    from public_app.services.fleet.rollout import rollout
    from public_app.services.provisioning import template_get

    template_get()
    state = migration_state()
    candidates = Organization.objects.filter(status__in=[OrganizationStatus.ACTIVE, OrganizationStatus.DELETING])
    todo = list(
        (candidates if force else candidates.exclude(migration_state=state))
        .order_by("id")
        .values_list("schema_name", "migration_state")
    )
    skipped = candidates.count() - len(todo)
    done = 0

    def tick(schema: str, error: str | None) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(todo), schema, error)

    def slow(schemas: list[str]) -> dict[str, str]:
        return _migrate_with_django(schemas, jobs=jobs, tick=tick)

    if force:
        failures, rendered, slowly = slow([schema for schema, _ in todo]), 0, len(todo)
    else:
        result = rollout(todo, state, jobs=jobs, slow=slow, progress=tick)
        failures, rendered, slowly = result["failed"], result["rendered"], result["slow"]
    return {"state": state, "migrated": len(todo) - len(failures), "skipped": skipped, "failed": failures,
            "rendered": rendered, "executor": slowly}  # fmt: skip


def _migrate_with_django(schemas: list[str], *, jobs: int, tick: Callable[[str, str | None], None]) -> dict[str, str]:
    """Django's executor on each schema (in `jobs` worker processes): the slow, always-correct way."""
    failures: dict[str, str] = {}
    if jobs <= 1 or len(schemas) <= 1:
        results: Iterable[tuple[str, str | None, float]] = (migrate_one(schema) for schema in schemas)
        for schema, error, _ in results:
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
            schema, error, _ = future.result()
            if error:
                failures[schema] = error
            tick(schema, error)
    return failures
