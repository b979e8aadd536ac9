"""Authentication for the API: bearer user tokens, and the per-operation organization access check.

`OrgAuth(capability)` is the one dependency of every org-scoped operation. It runs in ninja's authentication step,
before the request body is parsed, so a non-member gets 404 whatever the body holds. It authenticates the token,
resolves `{slug}` → organization → membership → capability (public_app.access.resolve_org), switches the connection
to the tenant schema when the operation needs it, and hands the result to the operation as `request.org`.
"""

from typing import Any

from django.db import connection
from django.http import HttpRequest
from ninja.security import HttpBearer

from config.logging import log_context_set
from public_app import errors
from public_app.access import Capability, Principal, resolve_org
from public_app.services.auth import principal_from_token
from public_app.services.members import membership_touch


class BearerAuth(HttpBearer):
    """User tokens only: organization API keys cannot call `/me` or anything outside their organization."""

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        principal = principal_from_token(token)
        if principal is None or not principal.is_user:
            return None
        log_context_set(actor=f"user:{principal.user_id}")
        return principal


class OrgAuth(HttpBearer):
    """User tokens and the organization's own API keys. `users_only` operations refuse API keys with 403
    (API keys never manage API keys)."""

    def __init__(
        self,
        capability: Capability,
        *,
        tenant_schema: bool = False,
        require_active: bool = True,
        allow_deleting: bool = False,
        users_only: bool = False,
    ) -> None:
        super().__init__()
        self.capability = capability
        self.tenant_schema = tenant_schema
        self.require_active = require_active
        self.allow_deleting = allow_deleting
        self.users_only = users_only

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        principal = principal_from_token(token)
        if principal is None:
            return None
        slug: Any = request.resolver_match.kwargs.get("slug") if request.resolver_match else None
        # Before the checks, so the lines logged about a refused request say who asked for what.
        log_context_set(
            org=str(slug or "")[:48] or None,
            actor=f"user:{principal.user_id}" if principal.is_user else f"api_key:{principal.uid}",
        )
        ctx = resolve_org(
            principal,
            str(slug or ""),
            self.capability,
            require_active=self.require_active,
            allow_deleting=self.allow_deleting,
            path=request.get_full_path(),
        )
        if self.users_only and not principal.is_user:
            raise errors.PermissionDenied("API keys cannot do this; sign in as a user.")
        request.org = ctx  # type: ignore[attr-defined]
        if principal.is_user:
            membership_touch(organization_id=ctx.organization.id, user_id=principal.user_id)
        if self.tenant_schema:
            connection.set_tenant(ctx.organization)
        return principal
