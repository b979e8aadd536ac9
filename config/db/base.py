"""PostgreSQL backend: django-tenants' schema switching, minus redundant `SET search_path` statements.

django-tenants (with TENANT_LIMIT_SET_CALLS) forgets the path it last sent whenever `set_tenant` is called, even
when the schema is the one already in effect. Our middleware resets every request to `public` and then activates
the organization's schema, so without this a request would send `SET search_path` twice. Here the statement is
only re-sent when the requested path differs from the one the connection actually has.
"""

from typing import Any

from django_tenants.postgresql_backend import base as tenants_base


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        in_effect = self.search_path_set_schemas
        super().set_tenant(tenant, include_public)
        if in_effect is not None and self.connection is not None and self._get_cursor_search_paths() == in_effect:
            self.search_path_set_schemas = in_effect
