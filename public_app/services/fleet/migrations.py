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

        from public_app.services.fleet import worker as fleet_worker

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
