"""Data steps shared by tenant migrations. Each schema runs them in its own migration (fleet migrations, or the
fallback provisioning path), so they take the historical model and work in batches on the current schema."""

from collections.abc import Callable
from typing import Any

from public_app.ids import new_uid

BATCH = 1000


def uid_backfill(app_label: str, model_name: str, prefix: str) -> Callable[[Any, Any], None]:
    """A RunPython step giving every row without one an id `<prefix>_…` whose time part is the row's `created_at`,
    so ids sort like the rows were made; the rest is random. Rows are visited by primary key, BATCH at a time."""

    def run(apps: Any, schema_editor: Any) -> None:
        rows = apps.get_model(app_label, model_name)._base_manager.using(schema_editor.connection.alias)
        last = 0
        while True:
            batch = list(rows.filter(uid__isnull=True, pk__gt=last).order_by("pk").only("pk", "created_at")[:BATCH])
            if not batch:
                return
            for row in batch:
                row.uid = new_uid(prefix, at=row.created_at)
            rows.bulk_update(batch, ["uid"])
            last = batch[-1].pk

    return run
