"""Entry points for `orgs migrate --jobs N` worker processes. Spawned (not forked: the parent may run threads),
so this module imports nothing from Django at the top: the process sets Django up first, in `init`."""

import os


def init(settings_module: str, database_name: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.db import connections

    # The parent's connection may point elsewhere than settings say (tests use their own database).
    connections["default"].settings_dict["NAME"] = database_name


def migrate_one(schema: str) -> tuple[str, str | None, float]:
    from public_app.services.provisioning import migrate_one as run

    return run(schema)
