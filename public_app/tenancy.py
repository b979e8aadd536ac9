"""Running code inside an organization's schema from anywhere (services, jobs, commands)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from public_app.models import Organization


@contextmanager
def tenant_context(organization: Organization) -> Iterator[None]:
    """Switch the connection to the organization's schema, and back to whatever it was, even on error."""
    previous = connection.tenant
    connection.set_tenant(organization)
    try:
        yield
    finally:
        connection.set_tenant(previous)
