"""PostgreSQL backend: django-tenants' schema switching, minus redundant `SET search_path` statements.

django-tenants (with TENANT_LIMIT_SET_CALLS) forgets the path it last sent whenever `set_tenant` is called, even
when the schema asked for is the one the connection already has. Our middleware resets every request to `public`
and then activates the organization's schema, so a request would send `SET search_path` twice, or once even when
the previous request on the connection used the same organization. Here we remember the path the server actually
has (forgotten on close and on any rollback, which undoes a SET) and only send the statement when it differs.
"""

from typing import Any

from django_tenants.postgresql_backend import base as tenants_base


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    _server_search_path: list[str] | None = None

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        if self._server_search_path is not None and self._get_cursor_search_paths() == self._server_search_path:
            self.search_path_set_schemas = self._server_search_path

    def _handle_search_path(self, cursor: Any = None) -> None:
        super()._handle_search_path(cursor)
        self._server_search_path = self.search_path_set_schemas

    def close(self) -> None:
        self._server_search_path = None
        super().close()

    def rollback(self) -> None:
        self._server_search_path = None
        super().rollback()

    def savepoint_rollback(self, sid: Any) -> None:
        self._server_search_path = None
        super().savepoint_rollback(sid)
