"""The tenant boundary: which schema and database role a piece of work runs in, and the roles themselves.

Every organization's schema has its own `NOLOGIN` role that may use that schema and nothing else. Tenant work (API
requests, jobs, services) runs with the organization's schema as its path *and* its role, pinned per transaction by
the database backend (config.db), so a query that reaches another organization's schema fails in PostgreSQL itself.
DDL (provisioning, migrations, purge, ops) runs as the login role with the schema as its path only
(`connection.set_schema`).

The roles themselves (create, grant, rename, drop, repair, inspect) are public_app.tenant_roles. Role names are
`<prefix><schema>`; the prefix (`TENANT_ROLE_PREFIX`, default: the database name and `_`) keeps the
roles of two databases on one cluster apart (roles are cluster-wide).
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, cast

from django.conf import settings
from django.db import connection
from django_tenants.postgresql_backend.base import FakeTenant

from config.logging import log_context


class TenantConnection(Protocol):
    """What django-tenants' database backend adds to a connection (config.db builds on it)."""

    tenant: object

    def set_tenant(self, tenant: object, include_public: bool = True) -> None: ...

    def set_schema(self, schema_name: str, include_public: bool = True, tenant_type: str | None = None) -> None: ...

    def set_schema_to_public(self) -> None: ...


def tenant_connection() -> TenantConnection:
    """The default connection, typed as the tenant-aware backend it is."""
    return cast(TenantConnection, connection)


class Tenant(Protocol):
    """What tenant work needs of an organization (public_app.models.Organization is one; this module sits below
    the models and does not import them)."""

    schema_name: str
    slug: str

    @property
    def db_role(self) -> str: ...


_UNSAFE = re.compile(r"[^a-z0-9_]")


def tenant_role_prefix() -> str:
    prefix = settings.TENANT_ROLE_PREFIX
    if prefix is None:
        prefix = _UNSAFE.sub("_", str(connection.settings_dict["NAME"]).lower()) + "_"
    return prefix


def tenant_role_name(schema_name: str) -> str:
    name = tenant_role_prefix() + schema_name
    if len(name) > 63 or _UNSAFE.search(name):
        raise ValueError(f"tenant role name {name!r} is not a plain PostgreSQL identifier of at most 63 characters")
    return name


class TenantSchema(FakeTenant):
    """A schema to do tenant work in when only its name is at hand (jobs carry the name): path and role."""

    @property
    def db_role(self) -> str:
        return tenant_role_name(self.schema_name)

    @property
    def statement_timeout_ms(self) -> int:
        return settings.QUERY_BUDGET_MS


@contextmanager
def tenant_context(organization: Tenant) -> Iterator[None]:
    """Run tenant work in the organization's schema, as its role; back to whatever it was on exit, even on error."""
    previous = tenant_connection().tenant
    tenant_connection().set_tenant(organization)
    try:
        with log_context(org=organization.slug):
            yield
    finally:
        tenant_connection().set_tenant(previous)


@contextmanager
def public_context() -> Iterator[None]:
    """Public rows read or written in the middle of tenant work (the tenant's role may not touch them)."""
    previous = tenant_connection().tenant
    tenant_connection().set_schema_to_public()
    try:
        yield
    finally:
        tenant_connection().set_tenant(previous)


@contextmanager
def schema_context(schema_name: str, *, as_tenant: bool = True) -> Iterator[None]:
    """The same for a schema name; `as_tenant=False` keeps the login role (DDL, migrations, ops reads)."""
    previous = tenant_connection().tenant
    if as_tenant:
        tenant_connection().set_tenant(TenantSchema(schema_name))
    else:
        tenant_connection().set_schema(schema_name)
    try:
        yield
    finally:
        tenant_connection().set_tenant(previous)
