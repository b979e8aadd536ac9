"""Authentication for the API: bearer user tokens, and the per-operation organization access check.

`OrgAuth(capability)` is the one dependency of every org-scoped operation. It runs in ninja's authentication step,
before the request body is parsed, so a non-member gets 404 whatever the body holds. It reads the token, the
organization `{slug}` names and the caller's membership (or API key) in one cache round trip
(public_app.services.callers), checks the capability (public_app.access.org_access_check), switches the connection
to the tenant schema when the operation needs it, and hands the caller to the operation as `request.auth`: one
`Access` (who, in which organization, with which role) that the operation passes to services as it is. Operations
declare `request: AuthedRequest` so the type checker knows it.
"""

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from config.logging import log_context_set
from public_app import errors
from public_app.access import Access, Capability, org_access_check
from public_app.api.common import client_ip
from public_app.services.callers import Caller, caller_authenticate
from public_app.tenancy import tenant_connection


def rate_check(request: HttpRequest, caller: Caller) -> None:
    """Fair share (public_app.fairshare): 429 when a bucket the request draws on is empty. The decision goes on the
    request either way: config.middleware writes its RateLimit headers on the response."""
    if caller.rate is None:
        return
    request.ratelimit = caller.rate  # type: ignore[attr-defined]
    bucket = caller.rate.refused_by
    if bucket is not None:
        request.ratelimit_refused = True  # type: ignore[attr-defined]  # config.api logs it once a minute per bucket
        who = {"organization": "this organization", "api_key": "this API key", "user_token": "your token"}
        raise errors.RateLimited(
            f"Too many requests for {who.get(bucket.policy, bucket.policy)}: {bucket.per_minute} per minute.",
            retry_after=caller.rate.retry_after,
            details={"policy": bucket.policy, "limit_per_minute": bucket.per_minute},
        )


class BearerAuth(HttpBearer):
    """User tokens only: organization API keys cannot call `/me` or anything outside their organization."""

    def authenticate(self, request: HttpRequest, token: str) -> Access | None:
        caller = caller_authenticate(token)
        if caller is None or not caller.access.is_user:
            return None
        log_context_set(actor=f"user:{caller.access.user_id}")
        rate_check(request, caller)
        return caller.access.with_ip(client_ip(request))


class OrgAuth(HttpBearer):
    # A router sets the auth its operations share (`Router(auth=OrgAuth(...))`); an operation overrides it only
    # where it needs another capability. The access-matrix test reads `capability` and `users_only`.
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

    def authenticate(self, request: HttpRequest, token: str) -> Access | None:
        slug: Any = request.resolver_match.kwargs.get("slug") if request.resolver_match else None
        slug = str(slug or "")
        caller = caller_authenticate(token, slug)
        if caller is None:
            return None
        # Before the checks, so the lines logged about a refused request say who asked for what.
        log_context_set(
            org=slug[:48] or None,
            actor=f"user:{caller.access.user_id}" if caller.access.is_user else f"api_key:{caller.access.uid}",
        )
        rate_check(request, caller)
        access = org_access_check(
            caller.access.with_ip(client_ip(request)),
            slug,
            caller.organization,
            caller.role,
            self.capability,
            require_active=self.require_active,
            allow_deleting=self.allow_deleting,
            path=request.get_full_path(),
            write=request.method not in ("GET", "HEAD", "OPTIONS"),
        )
        if self.users_only and not access.is_user:
            raise errors.PermissionDenied("API keys cannot do this; sign in as a user.")
        if self.tenant_schema:
            tenant_connection().set_tenant(access.org)
        return access


def tenant_data_auth() -> OrgAuth:
    """The tenant-data apps' routers: members with `tenant:data`, on the organization's schema."""
    return OrgAuth(Capability.TENANT_DATA, tenant_schema=True)
