"""`manage.py migrate` (and `migrate_schemas`): the public schema's migrations, then what to run for the tenant
schemas. django-tenants' version also walked every tenant schema one by one, with no lock, and crashed on the first
organization without a schema; tenant schemas are migrated by `orgs migrate` (in parallel, in steps, past
failures, under the fleet lock). One schema by name (`--tenant --schema S`, as provisioning does) still works."""

from typing import Any

from django.core.management.base import CommandError
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

from public_app.models import Organization
from public_app.services.fleet.rollout import tenant_labels
from public_app.services.provisioning import migration_state


class Command(MigrateSchemasCommand):
    help = "Apply the public schema's migrations; tenant schemas: `manage.py orgs migrate` (this command says so)."

    def handle(self, *args: Any, **options: Any) -> None:
        one_schema = options.get("schema_name") and options.get("tenant")
        if options.get("app_label") in tenant_labels() and not one_schema:
            raise CommandError(
                f"{options['app_label']} is a tenant app: `manage.py orgs migrate` migrates the tenant schemas "
                "(--slugs S for some, --plan to see what would run, --fake APP.MIGRATION to record one)"
            )
        if options.get("tenant") and not options.get("schema_name"):
            raise CommandError(
                "tenant schemas are migrated by `manage.py orgs migrate --jobs N` (in parallel, in steps with "
                "--slugs/--cohort/--percent, past failures, under the fleet lock)"
            )
        if not one_schema:
            options = {**options, "shared": True, "tenant": False}
        super().handle(*args, **options)
        if not one_schema and options.get("verbosity", 1) > 0:
            behind = Organization.objects.exclude(migration_state=migration_state()).exclude(migration_state="")
            if behind.exists():
                self.stdout.write(f"tenant schemas: {behind.count()} organization(s) behind the code's migrations; "
                                  "run `python manage.py orgs migrate --jobs 4`")  # fmt: skip
