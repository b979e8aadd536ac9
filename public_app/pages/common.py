"""What every hosted page shares: the signed-in viewer, rendering, the error page, and the viewer's access within an
organization decided by the API's own rule."""

from collections.abc import Callable
from functools import cache, wraps
from typing import Any

import pydantic
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from public_app import errors
from public_app.access import ROLE_CAPABILITIES, Access, Capability, org_access_check, roles_of
from public_app.models import Organization, User
from public_app.selectors import membership_role_load, organization_load

BACKEND = "django.contrib.auth.backends.ModelBackend"


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def next_path(request: HttpRequest, default: str = "/") -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    target = request.POST.get("next") or request.GET.get("next") or default
    return target if url_has_allowed_host_and_scheme(target, allowed_hosts=None) and target.startswith("/") else default


def viewer(request: HttpRequest) -> User | None:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


# The pages load their stylesheet and script from this site only (no inline code), and may not be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def page(request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    response = render(request, f"pages/{template}.html", {"viewer": viewer(request), **context}, status=status)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def problem(
    request: HttpRequest, exc: errors.ApplicationError, title: str | None = None, **context: Any
) -> HttpResponse:
    """The error page: the status and message the API would give, under a title a person understands."""
    status = exc.status if 400 <= exc.status < 600 else 400
    if title is None:
        title = {404: "Not found", 403: "Not allowed"}.get(status, "That did not work")
    return page(request, "problem", status=status, message=exc.message, code=exc.code, title=title, **context)


def messages_of(exc: errors.ApplicationError) -> list[str]:
    """The per-field messages of a 422 (or its message): what a form shows next to itself."""
    return [d["message"] for d in exc.details or [] if isinstance(d, dict) and "message" in d] or [exc.message]


def sign_in_first(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(f"/signin?next={request.get_full_path()}")


def signed_in(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The view runs with the signed-in user as its second argument; anyone else is sent to sign in first."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = viewer(request)
        if user is None:
            return sign_in_first(request)
        return view(request, user, *args, **kwargs)

    return wrapper


def org_access(
    request: HttpRequest, user: User, slug: str, capability: Capability, *, write: bool = False,
    require_active: bool = False,
) -> Access:  # fmt: skip
    """The viewer within the organization `slug` names, by the API's own rule (public_app.access.org_access_check):
    not a member (or a directory membership of an unverified address) is 404, a role without the capability 403,
    a read-only organization refuses writes; `require_active` for work in the organization's schema (503 while it
    is being set up)."""
    organization = organization_load(slug=slug)
    role = membership_role_load(organization_id=organization.id, user_id=user.id) if organization else None
    caller = Access.for_user(user, ip=client_ip(request))
    return org_access_check(caller, slug, organization, role, capability, require_active=require_active, write=write)


def grantable(organization: Organization, role: str) -> list[str]:
    """The roles the viewer may give (built-in, then custom), as the services will check them."""
    roles = roles_of(organization)
    return [key for key in [*ROLE_CAPABILITIES, *sorted(roles.custom)] if roles.may_grant(role, key)]


@cache
def _adapter(kind: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(kind)


def form_value(request: HttpRequest, field: str, kind: Any, default: str = "") -> Any:
    """A posted field checked by the same type the API's schema uses for it (public_app.fields): a 422 naming the
    field, as the API gives, when it does not hold."""
    try:
        return _adapter(kind).validate_python(request.POST.get(field, default))
    except pydantic.ValidationError as exc:
        raise errors.ValidationFailed.for_field(field, str(exc.errors()[0]["msg"])) from None
