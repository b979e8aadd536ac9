"""What every hosted page shares: the signed-in viewer, rendering, the error page, and the viewer's access within an
organization decided by the API's own rule."""

from collections.abc import Callable
from functools import cache, wraps
from typing import Any
from urllib.parse import urlsplit

import pydantic
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

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
    signed_in_viewer = viewer(request)
    response = render(request, f"pages/{template}.html", {"viewer": signed_in_viewer, **context}, status=status)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if signed_in_viewer is not None:  # a signed-in page (a key shown once…) stays out of caches and the back button
        patch_cache_control(response, private=True, no_store=True)
    return response


def _has_nul(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
    texts = [str(v) for v in kwargs.values()]
    for query in (request.GET, request.POST):
        for key, values in query.lists():
            texts.append(key)
            texts.extend(values)
    return any("\x00" in text for text in texts)


def methods(*allowed: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """The methods a page answers (any other gets the 405 page, with `Allow`); input holding a NUL character is
    refused (400) before the view runs, as the API refuses it (PostgreSQL can neither store nor compare it)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                message = f"This address answers {', '.join(allowed)} only."
                response = page(request, "problem", status=405, title="Not available this way", message=message,
                                code="method_not_allowed")  # fmt: skip
                response["Allow"] = ", ".join(allowed)
                return response
            if _has_nul(request, kwargs):
                return problem(request, errors.BadRequest("Text may not contain NUL characters."))
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form without its token (another site's, or one kept open past a sign-out)."""
    return page(request, "problem", status=403, title="This form has expired", code="csrf_failed",
                message="The form was not sent from this site's own page, or the page is out of date: reload it and "
                        "try again.")  # fmt: skip


def problem(
    request: HttpRequest, exc: errors.ApplicationError, title: str | None = None, **context: Any
) -> HttpResponse:
    """The error page: the status and message the API would give, under a title a person understands. A former
    slug (the API's 308) is followed to the organization's current address instead."""
    if isinstance(exc, errors.MovedPermanently):
        response = HttpResponseRedirect(exc.location)
        if request.method not in ("GET", "HEAD"):
            response.status_code = 308  # a form follows with its method and body, as on the API
        return response
    status = exc.status if 400 <= exc.status < 600 else 400
    if title is None:
        title = {404: "Not found", 403: "Not allowed"}.get(status, "That did not work")
    return page(request, "problem", status=status, message=exc.message, code=exc.code, title=title, **context)


def messages_of(exc: errors.ApplicationError) -> list[str]:
    """The per-field messages of a 422 (or its message): what a form shows next to itself."""
    return [d["message"] for d in exc.details or [] if isinstance(d, dict) and "message" in d] or [exc.message]


def sign_in_first(request: HttpRequest, then: str | None = None) -> HttpResponse:
    """To the sign-in page, and back afterwards: to `then`, else to this page, or for a form (which cannot be
    replayed as a GET) to the page it was posted from."""
    if then is None:
        if request.method in ("GET", "HEAD"):
            then = request.get_full_path()
        else:
            referer = urlsplit(request.headers.get("Referer", ""))
            then = (referer.path + (f"?{referer.query}" if referer.query else "")) if referer.path else "/"
    then = then if url_has_allowed_host_and_scheme(then, allowed_hosts=None) and then.startswith("/") else "/"
    return HttpResponseRedirect(f"/signin?{urlencode({'next': then})}")


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
    return org_access_check(caller, slug, organization, role, capability, require_active=require_active, write=write,
                            path=request.get_full_path())  # fmt: skip


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
        raise errors.ValidationFailed.for_field(field, _said_plainly(field, exc.errors()[0])) from None


def _said_plainly(field: str, error: Any) -> str:
    """pydantic's message for a person: the field named, no regex, no "Value error," prefix."""
    label = field.replace("_", " ").capitalize()
    kind, context = error.get("type", ""), error.get("ctx") or {}
    if kind == "string_too_long":
        return f"{label}: at most {context.get('max_length')} characters."
    if kind == "string_too_short":
        return f"{label} may not be empty."
    if kind == "string_pattern_mismatch":
        return f"{label} holds characters that are not allowed here."
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{label}: {message[:1].lower()}{message[1:]}".rstrip(".") + "."
