"""Small helpers shared by the routers: from where the caller is calling, and the caller's account."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest

from public_app import errors
from public_app.access import Access, Account
from public_app.models import User
from public_app.selectors import user_get
from public_app.tenancy import public_context


class AuthedRequest(HttpRequest):
    """A request that passed BearerAuth or OrgAuth (public_app.api.security): `auth` is the caller, with its
    organization under OrgAuth."""

    auth: Access


def client_ip(request: HttpRequest) -> str | None:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def request_user(request: AuthedRequest) -> User:
    """The signed-in account behind a user token (401 for an API key, or an account deactivated meanwhile)."""
    caller = request.auth
    if not caller.is_user or caller.user_id is None:
        raise errors.NotAuthenticated()
    with public_context():  # also called from tenant operations, whose role cannot read users
        user = user_get(user_id=caller.user_id)
    if user is None:
        raise errors.NotAuthenticated()
    return user


def request_account(request: AuthedRequest) -> Account | User:
    """The signed-in account as authentication read it with the token (current: any change to the account is seen
    by the next request's check), without a query; loaded when authentication did not read it."""
    return request.auth.account or request_user(request)


def caller_user_id(request: AuthedRequest) -> int:
    """The signed-in user's id, without loading the account (BearerAuth admits user tokens only)."""
    if request.auth.user_id is None:
        raise errors.NotAuthenticated()
    return request.auth.user_id


F = TypeVar("F", bound=Callable[..., Any])
_DECLARED_ERRORS: dict[Callable[..., Any], frozenset[str]] = {}


def may_raise(*codes: str) -> Callable[[F], F]:
    """The error codes an operation can answer beyond those that follow from its auth and inputs (config/openapi.py
    derives those); each must be in `errors.CODES`, which gives its status. The OpenAPI document lists them."""
    unknown = [code for code in codes if code not in errors.CODES]
    if unknown:
        raise ValueError(f"unknown error codes {unknown}: add them to public_app.errors.CODES")

    def mark(view: F) -> F:
        _DECLARED_ERRORS[view] = _DECLARED_ERRORS.get(view, frozenset()) | set(codes)
        return view

    return mark


def declared_errors(view: Callable[..., Any]) -> frozenset[str]:
    return _DECLARED_ERRORS.get(view, frozenset())
