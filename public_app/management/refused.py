"""django-tenants' management commands that bypass this service's rules (the purge record, the fleet lock, the
tenant roles, the schema records) are replaced by ones that refuse and name the safe equivalent: `manage.py
delete_tenant --noinput` used to delete an organization with no purge record, `tenant_command migrate --fake -s X`
ran on every schema, and `create_tenant --help` crashed."""

import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError


def refused(name: str, instead: str) -> type[BaseCommand]:
    message = f"`manage.py {name}` is not available here: it bypasses the service's rules. Instead: {instead}"

    class Command(BaseCommand):
        help = message

        def run_from_argv(self, argv: list[str]) -> NoReturn:  # any arguments, --help included
            sys.stderr.write(message + "\n")
            sys.exit(2)

        def handle(self, *args: Any, **options: Any) -> None:  # call_command()
            raise CommandError(message)

    return Command
