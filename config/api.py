"""The one NinjaAPI: authentication, the error handlers that give every error the body of API.md, and routers."""

import datetime
import json
import logging
import time
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from config import openapi
from config.metrics import QUERY_TIMEOUTS
from config.openapi import error_body
from public_app import errors
from public_app.api.security import BearerAuth

logger = logging.getLogger(__name__)

API_DESCRIPTION = """
Organizations backend (contract: API.md). Every organization-scoped path is `/api/v1/organizations/{slug}/...`.

* **Auth**: `Authorization: Bearer <token>`: a user token (signup/login; `ut_…`) or an organization API key
  (`ak_…`, acts only in its organization with its role; cannot call `/me`, manage API keys, delete or restore).
* **Errors**: always `{"code", "message", "details"}`. 404 for organizations that do not exist or that you do not
  belong to; a former slug answers `308` to the current one (members only) for 90 days; `410 organization_deleted`
  while an organization is being deleted (owners); `503 organization_provisioning` until it is ready;
  `503 service_unavailable` + `Retry-After` while its data is being upgraded (a request that needs a table or
  column a migration rollout has not brought to its schema yet), and for writes (not reads) while operators hold
  it read-only (maintenance: a restore, an incident).
  NUL characters anywhere in a request are `422`.
* **Lists**: `?limit=1..200&cursor=...` → `{"items", "next_cursor"}`, newest first (the organization switcher:
  most recently used first; invoices: Stripe's order, limit ≤ 100).
* **Idempotency**: any POST may carry `Idempotency-Key`; a repeat within 24 h by the same caller returns the first
  response (`Idempotent-Replayed: true`); the same key with another request is `409 idempotency_key_reused`.
* **Roles**: owner > admin > member, plus billing. Admins view billing but do not buy; members and billing do not
  see pending invitations.
* **Rate limits** (`429 rate_limited` + `Retry-After`): login 10/min per email and IP, signup 20/h per IP,
  invitations 100 per organization and 10 per email per organization per day (resends count). Fair share: every
  authenticated request draws on its credential's bucket (an API key; a user token, per organization) and on its
  organization's (members only), refilled per minute by the plan (free: 1,200 per organization, 600 per
  credential), each holding 10 seconds' worth; every answer carries `RateLimit-Policy` and `RateLimit` (IETF
  draft), and a 429 names the policy in `details`.
* **Query budget**: an organization's data queries stop after its plan's budget (5 s by default):
  `503 query_timeout` + `Retry-After`; narrow the request (filters, a smaller `limit`).
* **Timestamps** are UTC; datetimes you send must carry an offset.
"""


def error_response(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


class NulCharacterError(ValueError):
    """A NUL character anywhere in a JSON body: PostgreSQL text cannot hold it, so it is refused up front (422)."""


def _reject_nul(value: Any, path: str = "") -> None:
    """Raise NulCharacterError naming the field (dotted path) that holds a NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            raise NulCharacterError(path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, path)
            _reject_nul(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nul(item, f"{path}.{index}" if path else str(index))


class StrictJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        # Reject constants Python's json accepts but JSON does not (NaN, Infinity).
        def bad_constant(name: str) -> None:
            raise ValueError(f"invalid JSON constant {name}")

        data = json.loads(request.body, parse_constant=bad_constant)
        _reject_nul(data)
        return data


class PreciseJSONEncoder(NinjaJSONEncoder):
    """Timestamps at the precision they are stored with (microseconds), in UTC with `Z`: Django's encoder cuts
    them to milliseconds, so a client that sent `…12.345678Z` got `…12.345Z` back and could not match it."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().default(o)


class PreciseJSONRenderer(JSONRenderer):
    """orjson (about ten times faster than the standard library with an encoder hook on a list page); the same
    output: timestamps at full precision in UTC with `Z`, anything orjson does not know through the encoder above."""

    encoder_class = PreciseJSONEncoder
    _fallback = PreciseJSONEncoder()

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> bytes:
        return orjson.dumps(data, default=self._fallback.default, option=orjson.OPT_UTC_Z)


class OrganizationsAPI(NinjaAPI):
    """The API whose OpenAPI document is the client contract (config/openapi.py)."""

    def get_openapi_operation_id(self, operation: Operation) -> str:
        return openapi.operation_id(operation.view_func.__name__)

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> OpenAPISchema:
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return openapi.ContractSchema(self, path_prefix)


api = OrganizationsAPI(
    title="Organizations API",
    version="1.0.0",
    description=API_DESCRIPTION,
    urls_namespace="api-v1",
    auth=BearerAuth(),
    parser=StrictJSONParser(),
    renderer=PreciseJSONRenderer(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _field_errors(exc_errors: list[dict]) -> list[dict]:
    details = []
    for err in exc_errors:
        loc = [str(part) for part in err.get("loc", [])]
        # ninja prefixes the location with the source ("body", "query", "path") and the parameter name.
        if loc and loc[0] == "body" and len(loc) <= 2:
            loc = []  # the body as a whole (not an object, say): no field to name
        elif loc and loc[0] in {"body", "query", "path", "header", "form", "file"}:
            loc = loc[2:] if len(loc) > 2 else loc[1:]
        details.append({"field": ".".join(loc) or None, "message": err.get("msg", "Invalid value.")})
    return details


_refusals_logged: dict[str, float] = {}


def _log_refusal_once_a_minute(request: HttpRequest, response: HttpResponse, exc: errors.ApplicationError) -> None:
    """A client over its limit may send hundreds of requests a second: Django's warning for each 429 cost about
    as much as the refusal itself and flooded the log. One line per bucket and process a minute says enough (the
    counts are in /metrics)."""
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own "already logged" mark
    slug = request.resolver_match.kwargs.get("slug") if request.resolver_match else None
    key = f"{(exc.details or {}).get('policy')}:{slug}"
    now = time.monotonic()
    if _refusals_logged.get(key, 0.0) <= now:
        if len(_refusals_logged) > 10_000:
            _refusals_logged.clear()
        _refusals_logged[key] = now + 60
        logger.warning("rate limited on %s %s: %s (logged once a minute)", request.method, request.path, exc.message)


@api.exception_handler(errors.ApplicationError)
def _application_error(request: HttpRequest, exc: errors.ApplicationError) -> HttpResponse:
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    if getattr(request, "ratelimit_refused", False):
        _log_refusal_once_a_minute(request, response, exc)
    if isinstance(exc, errors.RateLimited | errors.ServiceUnavailable) and exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.MovedPermanently):
        response["Location"] = exc.location
    return response


@api.exception_handler(NinjaValidationError)
def _validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    return error_response(422, "validation_error", "The request is not valid.", _field_errors(exc.errors))


@api.exception_handler(DjangoValidationError)
def _django_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    details: list[dict[str, str | None]]
    if hasattr(exc, "error_dict"):
        details = [{"field": f, "message": m} for f, msgs in exc.message_dict.items() for m in msgs]
    else:
        details = [{"field": None, "message": m} for m in exc.messages]
    return error_response(422, "validation_error", "The request is not valid.", details)


@api.exception_handler(AuthenticationError)
def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(401, "not_authenticated", errors.NotAuthenticated.default_message)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, RequestDataTooBig):
        return error_response(413, "payload_too_large", errors.PayloadTooLarge.default_message)
    if isinstance(exc.__cause__, NulCharacterError):
        field = exc.__cause__.args[0] if exc.__cause__.args else None
        return error_response(422, "validation_error", "The request is not valid.",
                              [{"field": field, "message": "NUL characters are not allowed."}])  # fmt: skip
    if exc.status_code == 400:
        return error_response(400, "invalid_json", "The request body is not valid JSON.")
    return error_response(exc.status_code, "http_error", str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "not_found", "Not found.")


@api.exception_handler(DjangoPermissionDenied)
def _permission_denied(request: HttpRequest, exc: DjangoPermissionDenied) -> HttpResponse:
    return error_response(403, "permission_denied", errors.PermissionDenied.default_message)


def database_unavailable_response() -> HttpResponse:
    response = error_response(503, "database_unavailable", "The database is unavailable; try again shortly.")
    response["Retry-After"] = str(settings.DATABASE_RETRY_AFTER_SECONDS)
    return response


# A table or column the code expects is not in the schema: undefined_table, undefined_column.
_MISSING_OBJECT = {"42P01", "42703"}


def _organization_upgrading(request: HttpRequest, exc: BaseException) -> bool:
    """The request's organization has a schema behind the code (a rollout has not reached it yet) and the query
    met a table or column that only the pending migrations add: worth a retry shortly, not a 500. A schema recorded
    as current that lacks them is drift, and stays a 500."""
    from django.db import ProgrammingError

    from public_app.services.provisioning import schema_behind

    if not isinstance(exc, ProgrammingError) or getattr(exc.__cause__, "sqlstate", None) not in _MISSING_OBJECT:
        return False
    organization = getattr(getattr(request, "auth", None), "org", None)
    return organization is not None and schema_behind(organization.id, organization.migration_state)


def is_database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad query): worth a retry later."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


def query_timed_out(exc: BaseException) -> bool:
    """A statement ran past its transaction's statement_timeout: the organization's query budget (config.db)."""
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) == "57014" and "statement timeout" in str(cause)


def _query_timeout_response(request: HttpRequest) -> HttpResponse:
    from public_app.fairshare import usage_count

    organization = getattr(getattr(request, "auth", None), "organization", None)
    budget = organization.statement_timeout_ms if organization is not None else settings.QUERY_BUDGET_MS
    if organization is not None:
        usage_count(organization.id, "t")
    QUERY_TIMEOUTS.inc()
    response = error_response(
        503, "query_timeout",
        f"This request needed more than this organization's query budget ({budget} ms) and was stopped; "
        "narrow it (filters, a smaller `limit`) or try again later.",
        {"budget_ms": budget},
    )  # fmt: skip
    response["Retry-After"] = str(settings.DATABASE_RETRY_AFTER_SECONDS)
    return response


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    if query_timed_out(exc):
        logger.warning("query budget exceeded on %s %s: %s", request.method, request.path, exc)
        return _query_timeout_response(request)
    if is_database_unavailable(exc):
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return database_unavailable_response()
    if _organization_upgrading(request, exc):
        logger.warning("organization schema behind the code on %s %s: %s", request.method, request.path, exc)
        response = error_response(503, "service_unavailable",
                                  "This organization's data is being upgraded; try again shortly.")  # fmt: skip
        response["Retry-After"] = str(settings.DATABASE_RETRY_AFTER_SECONDS)
        return response
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def register_routers() -> None:
    from public_app.api import auth as auth_api
    from public_app.api import billing as billing_api
    from public_app.api import developers as developers_api
    from public_app.api import directory as directory_api
    from public_app.api import domains as domains_api
    from public_app.api import invitations as invitations_api
    from public_app.api import join_requests as join_requests_api
    from public_app.api import members as members_api
    from public_app.api import organizations as organizations_api
    from public_app.api import roles as roles_api
    from tenant_apps.agents import api as agents_api
    from tenant_apps.audit import api as audit_api
    from tenant_apps.campaigns import api as campaigns_api
    from tenant_apps.integrations import api as integrations_api
    from tenant_apps.leads import api as leads_api
    from tenant_apps.phone_numbers import api as phone_numbers_api
    from tenant_apps.webhooks import api as webhooks_api

    api.add_router("/", auth_api.router)
    api.add_router("/", invitations_api.router)
    api.add_router("/", billing_api.router)
    api.add_router("/organizations", organizations_api.router)
    api.add_router("/organizations", members_api.router)
    api.add_router("/organizations", domains_api.router)
    api.add_router("/", domains_api.me_router)
    api.add_router("/", roles_api.router)
    api.add_router("/organizations", join_requests_api.router)
    api.add_router("/", join_requests_api.me_router)
    api.add_router("/organizations", developers_api.router)
    api.add_router("/organizations", directory_api.router)
    api.add_router("/organizations", agents_api.router)
    api.add_router("/organizations", campaigns_api.router)
    api.add_router("/organizations", leads_api.router)
    api.add_router("/organizations", phone_numbers_api.router)
    api.add_router("/organizations", integrations_api.router)
    api.add_router("/organizations", audit_api.router)
    api.add_router("/organizations", webhooks_api.router)


register_routers()
