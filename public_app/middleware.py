import re
import uuid
from collections.abc import Callable

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from config.logging import log_context_clear, log_context_set
from public_app.tenancy import tenant_connection


class PublicSchemaMiddleware:
    """Every request starts and ends in the `public` schema, even when the view raised.

    This only changes which search_path the next query will carry (config.db sends `SET search_path` lazily and only
    when it differs from what the connection has), so it costs no SQL by itself.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant_connection().set_schema_to_public()
        try:
            return self.get_response(request)
        finally:
            tenant_connection().set_schema_to_public()


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestContextMiddleware:
    """A request id (the caller's X-Request-ID if it looks sane, else a new one) on every log line of the request
    and on the response; the organization and caller are added once OrgAuth has resolved them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        log_context_clear()
        log_context_set(request_id=request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _clear_log_context(**kwargs: object) -> None:
    log_context_clear()


# Cleared when the response is done, not when this middleware returns: Django logs 4xx/5xx responses after the
# middleware chain, and those lines should still carry the request's context.
request_finished.connect(_clear_log_context, dispatch_uid="clear-log-context")


class AdminLoginGuardMiddleware:
    """The Django admin's login form gets the same guessing defence as the API's login (public_app.bruteforce):
    per username, per address and per pair, with a doubling wait after a few failures (429 + Retry-After)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != "/admin/login/":
            return self.get_response(request)
        from public_app import errors
        from public_app.api.common import client_ip
        from public_app.bruteforce import guard_check, guard_failed, guard_succeeded
        from public_app.models import normalize_email

        account = normalize_email(str(request.POST.get("username", "")))[:254] or None
        ip = client_ip(request)
        try:
            guard_check("admin-login", account=account, ip=ip)
        except errors.RateLimited as exc:
            response = HttpResponse("Too many failed attempts; wait before trying again.", status=429,
                                    content_type="text/plain")  # fmt: skip
            response["Retry-After"] = str(exc.retry_after)
            return response
        response = self.get_response(request)
        # The admin answers a good login with a redirect and a bad one with the form again.
        if response.status_code in (301, 302, 303):
            guard_succeeded("admin-login", account=account, ip=ip)
        else:
            guard_failed("admin-login", account=account, ip=ip)
        return response
