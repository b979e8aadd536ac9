"""PostgreSQL backend: the tenant context is pinned per transaction, never left in the server session.

A connection pooler in transaction mode (PgBouncer, RDS Proxy, Supabase's pooler) hands each transaction to
whichever server connection is free, so a session-level `SET search_path` sent by one request is seen by the next
client's queries, and a query sent after it may land on a server that never saw it. django-tenants sends exactly
that. Here nothing is session state:

- The schema (and the organization's database role, see `public_app.tenancy`) chosen with `set_tenant()` is only
  Python state on the wrapper until a statement runs.
- Every transaction starts with `set_config('search_path', …, true), set_config('role', …, true)`, which last until
  that transaction ends. Outside an atomic block each statement is its own transaction, so the pin is sent in the
  same simple-query message as the statement (one round trip, one implicit transaction: a pooler cannot split it).
  Inside an atomic block it is prefixed to the first statement of the transaction, and again only when the tenant
  changes or a savepoint rollback may have undone it.
- Public work pins `public` and resets the role, so a path or role left on a pooled server connection by any other
  client cannot redirect it either.

Server-side cursors (`WITH HOLD` in autocommit) would be session state too; settings turn them off.
"""

import re
from typing import Any

from django_tenants.postgresql_backend import base as tenants_base
from django_tenants.utils import get_public_schema_name, quote_schema_name
from psycopg import pq, sql

# Statements PostgreSQL refuses inside a transaction block (a pinned statement is one); they name no tenant
# table, or (CONCURRENTLY) must be schema-qualified by whoever sends them.
_OUTSIDE_TRANSACTIONS = re.compile(
    r"\s*(?:(?:CREATE|DROP|ALTER)\s+(?:DATABASE|TABLESPACE|SYSTEM)|VACUUM|.*\bCONCURRENTLY\b)",
    re.IGNORECASE | re.DOTALL,
)
_DDL = re.compile(r"\s*(?:CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|TRUNCATE)\b", re.IGNORECASE)
_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_SAFE_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_django_cursor: Any = tenants_base.original_backend.Cursor


class PinnedCursor(_django_cursor):
    """A client-side-binding cursor that puts the wrapper's pin in front of a statement when the open transaction
    (or, in autocommit, the statement's own implicit transaction) does not have it yet."""

    pinning: "DatabaseWrapper | None" = None

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        wrapper = self.pinning
        pin = wrapper.pin_needed() if wrapper is not None else None
        if pin is None or (isinstance(query, str) and _OUTSIDE_TRANSACTIONS.match(query)):
            return super().execute(query, params, **kwargs)
        if isinstance(query, str) and _DDL.match(query):
            # DDL gets the pin as a statement of its own: Citus forwards DDL to its workers with the whole query
            # string, and a worker refuses a string of several commands.
            if self.connection.autocommit:
                with self.connection.transaction():
                    super().execute(pin)
                    wrapper.pin_sent(pin)  # type: ignore[union-attr]
                    return super().execute(query, params, **kwargs)
            super().execute(pin)
            wrapper.pin_sent(pin)  # type: ignore[union-attr]
            return super().execute(query, params, **kwargs)
        if isinstance(query, str):
            query = f"{pin};\n{query}"
        elif isinstance(query, bytes):
            query = pin.encode() + b";\n" + query
        else:
            query = sql.SQL(pin + ";\n") + query
        super().execute(query, params, **kwargs)
        self.nextset()  # the caller sees its own statement's result, not the pin's
        wrapper.pin_sent(pin)  # type: ignore[union-attr]
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        wrapper = self.pinning
        if wrapper is None or wrapper.pin_needed() is None:
            return super().executemany(query, params_seq, **kwargs)
        if self.connection.autocommit:
            # Several statements: one explicit transaction so that all of them see the pin.
            with self.connection.transaction():
                self.execute("SELECT 1")
                return super().executemany(query, params_seq, **kwargs)
        self.execute("SELECT 1")
        return super().executemany(query, params_seq, **kwargs)


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    # The role tenant work runs as (None: the login role). Set from the tenant object passed to set_tenant().
    tenant_role: str | None = None
    # The pin for the current tenant, and the one already in force in the open transaction (if any).
    _pin: str = ""
    _pinned: str | None = None

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["cursor_factory"] = PinnedCursor
        return params

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        role = getattr(tenant, "db_role", None) if self.schema_name != get_public_schema_name() else None
        if role is not None and not _SAFE_ROLE.match(role):
            raise ValueError(f"unsafe tenant role name {role!r}")
        self.tenant_role = role
        self._pin = self._pin_sql()

    def _handle_search_path(self, cursor: Any = None) -> None:
        """django-tenants would send a session-level `SET search_path` here; the pin replaces it."""

    def create_cursor(self, name: Any = None) -> Any:
        cursor = super().create_cursor(name)
        if name is None:
            cursor.pinning = self
        return cursor

    def _pin_sql(self) -> str:
        # Literals built from validated schema names (django-tenants refuses quotes, backslashes and semicolons)
        # and a role name of letters, digits and underscores.
        path = ", ".join(p if _PLAIN_NAME.match(p) else quote_schema_name(p) for p in self._get_cursor_search_paths())
        return (
            f"SELECT pg_catalog.set_config('search_path', '{path}', true), "
            f"pg_catalog.set_config('role', '{self.tenant_role or 'none'}', true)"
        )

    def pin_needed(self) -> str | None:
        """The pin to send with the next statement, or None when the open transaction already has it (or is
        aborted: the statement then is a rollback, which must not be prefixed)."""
        status = self.connection.info.transaction_status
        if status == pq.TransactionStatus.INERROR:
            return None
        pin = self._pin
        if status == pq.TransactionStatus.INTRANS and self._pinned == pin:
            return None
        return pin

    def pin_sent(self, pin: str) -> None:
        # In autocommit the statement's implicit transaction is already over; nothing carries on.
        self._pinned = None if self.connection.autocommit else pin

    def close(self) -> None:
        self._pinned = None
        super().close()

    def savepoint_rollback(self, sid: Any) -> None:
        # A pin sent after the savepoint is undone with it.
        self._pinned = None
        super().savepoint_rollback(sid)
