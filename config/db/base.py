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
import select
from contextvars import ContextVar
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

# The query budget of tenant work in this context instead of the organization's (jobs: JOB_QUERY_BUDGET_MS, set
# by jobs.middleware around each message). Read when the tenant is set.
budget_override: ContextVar[int | None] = ContextVar("budget_override", default=None)


class PinnedCursor(_django_cursor):
    """A client-side-binding cursor that puts what the statement's transaction lacks in front of it, in the same
    message: `BEGIN` when Django opened a transaction that the server has not seen yet, and the wrapper's pin when
    the open transaction (or, in autocommit, the statement's own implicit transaction) does not have it yet."""

    pinning: "DatabaseWrapper | None" = None

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        wrapper = self.pinning
        if wrapper is None or (isinstance(query, str) and _OUTSIDE_TRANSACTIONS.match(query)):
            return super().execute(query, params, **kwargs)
        begin, pin = wrapper.begin_needed(), wrapper.pin_needed()
        prefix = [part for part in (begin, pin) if part]
        if not prefix:
            return super().execute(query, params, **kwargs)
        if isinstance(query, str) and _DDL.match(query):
            # DDL gets the prefix as a statement of its own: Citus forwards DDL to its workers with the whole query
            # string, and a worker refuses a string of several commands.
            if wrapper.autocommit:
                with self.connection.transaction():
                    super().execute(";\n".join(prefix))
                    wrapper.pin_sent(pin)
                    return super().execute(query, params, **kwargs)
            super().execute(";\n".join(prefix))
            wrapper.pin_sent(pin)
            return super().execute(query, params, **kwargs)
        text = ";\n".join(prefix) + ";\n"
        if isinstance(query, str):
            query = text + query
        elif isinstance(query, bytes):
            query = text.encode() + query
        else:
            query = sql.SQL(text) + query
        super().execute(query, params, **kwargs)
        for _ in prefix:
            self.nextset()  # the caller sees its own statement's result, not the prefix's
        wrapper.pin_sent(pin)
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        wrapper = self.pinning
        if wrapper is None or (wrapper.pin_needed() is None and wrapper.begin_needed() is None):
            return super().executemany(query, params_seq, **kwargs)
        if wrapper.autocommit:
            # Several statements: one explicit transaction so that all of them see the pin.
            with self.connection.transaction():
                self.execute("SELECT 1")
                return super().executemany(query, params_seq, **kwargs)
        self.execute("SELECT 1")  # opens the transaction (BEGIN) with the pin
        return super().executemany(query, params_seq, **kwargs)


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    # The role tenant work runs as (None: the login role). Set from the tenant object passed to set_tenant().
    tenant_role: str | None = None
    # statement_timeout of tenant work (ms; 0: none), from the tenant's `statement_timeout_ms` (its query budget).
    tenant_budget_ms: int = 0
    # The pin for the current tenant, and the one already in force in the open transaction (if any).
    _pin: str = ""
    _pinned: str | None = None
    health_check_done: bool

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["cursor_factory"] = PinnedCursor
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        connection.autocommit = True
        return connection

    def _set_autocommit(self, autocommit: bool) -> None:
        """The driver stays in autocommit: when Django opens a transaction, the cursor sends `BEGIN` in front of
        the transaction's first statement (with the pin), instead of the driver sending it on its own, one round
        trip earlier. Django's own flag (`self.autocommit`) says whether a transaction is wanted; commit and
        rollback are sent by the driver when the server has a transaction open, and skipped when it has none."""
        if not self.connection.autocommit:
            with self.wrap_database_errors:
                self.connection.autocommit = True

    def begin_needed(self) -> str | None:
        """`BEGIN` when Django is in a transaction the server has not been told about yet."""
        if self.autocommit or self.connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return None
        return self.connection._get_tx_start_command().decode()  # BEGIN [ISOLATION LEVEL …], as the driver would

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        role = getattr(tenant, "db_role", None) if self.schema_name != get_public_schema_name() else None
        if role is not None and not _SAFE_ROLE.match(role):
            raise ValueError(f"unsafe tenant role name {role!r}")
        self.tenant_role = role
        budget = budget_override.get() if role is not None else 0
        if budget is None:
            budget = getattr(tenant, "statement_timeout_ms", 0) or 0
        self.tenant_budget_ms = int(budget)
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
        # The query budget rides on the same pin: a transaction-local statement_timeout, so it bounds this tenant's
        # work and nothing else that later shares the (pooled) server connection.
        budget = f", pg_catalog.set_config('statement_timeout', '{self.tenant_budget_ms}', true)" if (
            self.tenant_role and self.tenant_budget_ms > 0) else ""  # fmt: skip
        return (
            f"SELECT pg_catalog.set_config('search_path', '{path}', true), "
            f"pg_catalog.set_config('role', '{self.tenant_role or 'none'}', true){budget}"
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

    def pin_sent(self, pin: str | None) -> None:
        # In autocommit the statement's implicit transaction is already over; nothing carries on.
        in_transaction = self.connection.info.transaction_status == pq.TransactionStatus.INTRANS
        self._pinned = pin if in_transaction and pin else None

    def close_if_health_check_failed(self) -> None:
        """Django checks a reused connection with `SELECT 1` before the first query of every request: a round trip
        per request. A connection the server (or a pooler) closed while it sat idle has something to read, the
        server's termination message or the end of the stream, while a healthy idle one has nothing: only then is
        the full check made. (A peer that vanished without a word is found by the request's own query, which then
        answers 503 and the connection is replaced, as after any connection error.)"""
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if self.connection.closed or _readable(self.connection.fileno()):
            super().close_if_health_check_failed()
        self.health_check_done = True

    def close(self) -> None:
        self._pinned = None
        super().close()

    def savepoint_rollback(self, sid: Any) -> None:
        # A pin sent after the savepoint is undone with it.
        self._pinned = None
        super().savepoint_rollback(sid)


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True
