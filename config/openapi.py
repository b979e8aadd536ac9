"""The OpenAPI document as a contract clients generate from.

ninja describes what an operation returns when it succeeds. What it can answer otherwise follows from the code, so
it is derived here rather than written beside each operation (where it would drift):

* from the operation's authentication: 401 for a bearer token; under `OrgAuth` also 404 (not a member), 308 (a
  former slug), 410 (being deleted), 503 (still provisioning; tenant data: its schema being upgraded) and 403 when
  some role lacks the capability;
* from its inputs: 422 for any parameter or body, 400 for a JSON body, 413 for any body, and for every POST the
  `Idempotency-Key` outcomes (409, 422);
* from what the operation says it raises beyond that (`public_app.api.common.may_raise`, by error code; the status of
  each code comes from the one catalogue in `public_app.errors.CODES`).

Every error response refers to the one `Error` schema, the same class the error handlers build their bodies from.
The test suite checks every error response it receives against this document (tests/contract.py), so an operation
that starts answering a new status or code fails the suite until it says so.

Also here: short operation ids (`listLeads`), tags that follow the settings tabs, a summary for every operation,
the security schemes, the headers the middleware reads and writes, descriptions and examples for every property
and parameter (config/openapi_glossary.py), and links from each create operation to what reads the new object.
"""

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ninja import Schema
from ninja.openapi.schema import OpenAPISchema
from pydantic import Field

from config.openapi_glossary import describe_schemas, example_for_schema, parameter_text
from public_app import errors, ids
from public_app.access import ROLE_CAPABILITIES
from public_app.api.common import declared_errors
from public_app.api.security import BearerAuth, OrgAuth

if TYPE_CHECKING:
    from ninja import NinjaAPI
    from ninja.operation import Operation


class Error(Schema):
    """The body of every error response, whatever the status."""

    code: str = Field(description="Stable, machine-readable, snake_case: branch on this.", examples=["not_found"])
    message: str = Field(description="For humans; may change.", examples=["Not found."])
    details: Any = Field(
        None,
        description="More about the error, or null. For `validation_error`, a list of `{field, message}` (`field` "
        "is the dotted path of the offending input, or null for the request as a whole).",
        examples=[[{"field": "name", "message": "This field may not be blank"}]],
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return Error(code=code, message=message, details=details).model_dump()


def operation_id(view_name: str) -> str:
    """`list_leads` → `listLeads`: stable (the function's name) and short enough to become a client's method."""
    head, *rest = view_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def summary(view_name: str) -> str:
    """`list_webhook_deliveries` → `List webhook deliveries`."""
    words = view_name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


# Error codes every operation of a kind can answer (status comes from errors.CODES).
# Any request: NUL in the path or query is refused (config.middleware), the HTTP server has its own limits.
_ANY = ("database_unavailable", "internal_error", "validation_error", "uri_too_long", "request_header_fields_too_large")
_TOKEN = ("not_authenticated",)
_ORG = ("not_found", "moved_permanently", "organization_deleted")
_INPUT = ("validation_error",)
_JSON = ("invalid_json",)
_WITH_BODY = ("payload_too_large",)
_POST = ("idempotency_key_reused", "idempotency_request_in_progress", "validation_error")

_ID_PARAM = re.compile(r"^[a-z_]+_id$|^token$")


def _auth_of(operation: "Operation") -> list[Any]:
    return list(operation.auth_callbacks or [])


def error_codes(operation: "Operation") -> set[str]:
    """Every error code this operation can answer with."""
    codes: set[str] = set(_ANY)
    sources = {model.__ninja_param_source__ for model in operation.models}
    path_params = {
        name for model in operation.models if model.__ninja_param_source__ == "path" for name in model.model_fields
    }
    for auth in _auth_of(operation):
        if isinstance(auth, BearerAuth | OrgAuth):
            codes.update(_TOKEN)
            codes.add("rate_limited")  # fair share: the credential's or the organization's bucket is empty
        if isinstance(auth, OrgAuth):
            codes.update(_ORG)
            codes.add("query_timeout")  # the organization's query budget
            if auth.require_active:
                codes.add("organization_provisioning")
            if auth.tenant_schema:  # its schema behind the code mid-rollout (config.api._organization_upgrading)
                codes.add("service_unavailable")
            if auth.users_only or not all(auth.capability in caps for caps in ROLE_CAPABILITIES.values()):
                codes.add("permission_denied")
    if sources:
        codes.update(_INPUT)
    if "body" in sources:
        codes.update(_JSON)
    methods = set(operation.methods)
    if methods - {"GET", "HEAD", "OPTIONS"} and any(isinstance(auth, OrgAuth) for auth in _auth_of(operation)):
        codes.add("service_unavailable")  # a write while the organization is read-only for maintenance
    if methods & {"POST", "PUT", "PATCH"}:
        codes.update(_WITH_BODY)
    if "POST" in methods:
        codes.update(_POST)
    if any(_ID_PARAM.match(name) for name in path_params):
        codes.add("not_found")
    codes.update(declared_errors(operation.view_func))
    return codes


# Path parameters that name an object, and the prefixes of its ids.
PATH_ID_PREFIXES: dict[str, tuple[str, ...]] = {
    "user_id": (ids.USER,), "invitation_id": (ids.INVITATION,), "key_id": (ids.API_KEY,), "agent_id": (ids.AGENT,),
    "campaign_id": (ids.CAMPAIGN,), "lead_id": (ids.LEAD,), "number_id": (ids.PHONE_NUMBER,),
    "webhook_id": (ids.WEBHOOK, ids.WEBHOOK_LEGACY), "domain_id": (ids.DOMAIN,),
    "join_request_id": (ids.JOIN_REQUEST,), "scim_token_id": (ids.SCIM_TOKEN,),
}  # fmt: skip


def _id_pattern(name: str) -> str:
    prefixes = PATH_ID_PREFIXES[name]
    return ids.uid_pattern(prefixes[0] if len(prefixes) == 1 else "(?:" + "|".join(prefixes) + ")")


def _header(description: str, schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    header: dict[str, Any] = {"description": description, "schema": schema}
    if example is not None:
        header["example"] = example
    return header


REQUEST_ID = _header("The request's id (yours, when you sent a sane `X-Request-ID`); quote it when asking for help.",
                     {"type": "string", "maxLength": 64}, "4f1c2b9e0d8a4e6f9a7b3c2d1e0f9a8b")  # fmt: skip
RETRY_AFTER = _header("Seconds to wait before trying again.", {"type": "integer", "minimum": 0}, 30)
RATELIMIT_POLICY = _header(
    "Fair-share policies this request drew on (IETF draft-ietf-httpapi-ratelimit-headers): `organization` (the "
    "organization's quota), `api_key` or `user_token` (the credential's); `q` requests per `w` seconds.",
    {"type": "string"}, '"organization";q=200;w=10, "api_key";q=100;w=10',
)  # fmt: skip
RATELIMIT = _header(
    "The policy closest to exhaustion: `r` requests left, `t` seconds until its quota is whole again.",
    {"type": "string"}, '"api_key";r=99;t=1',
)  # fmt: skip
REPLAYED = _header(
    "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.",
    {"type": "string", "enum": ["true"]},
    "true",
)
LOCATION = _header(
    "The same path under the organization's current slug.", {"type": "string"}, "/api/v1/organizations/acme-2"
)

IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "Any unique text (a UUID, say). A repeat with the same key by the same caller within 24 hours "
    "returns the first response without doing the work again (`Idempotent-Replayed: true`); the same key with "
    "another request is `409 idempotency_key_reused`.",
    "schema": {"type": "string", "maxLength": 255},
    "example": "3f6c1e9a-8b2d-4c7e-9f0a-1b2c3d4e5f60",
}
X_REQUEST_ID = {
    "in": "header",
    "name": "X-Request-ID",
    "required": False,
    "description": "Your id for this request, echoed back and written on every log line: 1-64 of `A-Za-z0-9._-` "
    "(anything else is replaced by an id of ours).",
    "schema": {"type": "string"},
    "example": "req-7f3a",
}

SECURITY_SCHEMES = {
    "UserToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ut_…",
        "description": "A user token from `POST /auth/signup` or `/auth/login`: acts as that user in every "
        "organization they belong to, with their role there. Ends at logout.",
    },
    "ApiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ak_…",
        "description": "An organization API key (Settings → Developers): acts only inside its own organization, "
        "with the role it was given. It cannot call `/me`, manage API keys, delete or restore the organization, "
        "and any other organization is 404.",
    },
}

TAGS = [
    ("Authentication", "Sign up, verify the email address, sign in and out."),
    ("Current user", "The signed-in user: profile, the organization switcher, invitations addressed to me."),
    ("Invitation links", "The page an invitation email links to: preview, then accept once signed in."),
    ("General", "Settings → General: the organization itself (name, slug, logo, identity), deletion and restore."),
    ("Members", "Settings → Members: members, roles, invitations."),
    ("Billing", "Settings → Billing: plans, subscription, checkout, payment method, invoices."),
    ("Developers", "Settings → Developers: API keys and webhook endpoints."),
    ("Leadsforce", "Settings → Leadsforce: the lead-sourcing integration."),
    ("Audit log", "Who changed what in the organization."),
    ("Agents", "Voice agents (organization data)."),
    ("Campaigns", "Campaigns run by an agent (organization data)."),
    ("Leads", "Leads, entered, imported or synced from Leadsforce (organization data)."),
    ("Phone numbers", "Phone numbers answered by an agent (organization data)."),
]


def _error_response(status: int, codes: list[str]) -> dict[str, Any]:
    lines = "; ".join(f"`{code}`: {errors.CODES[code][1]}" for code in codes)
    response: dict[str, Any] = {
        "description": f"{errors.status_phrase(status)}. {lines}",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                         "example": error_body(codes[0], errors.CODES[codes[0]][1])}},
        "x-error-codes": codes,
    }  # fmt: skip
    headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID}
    if status in (429, 503):
        headers["Retry-After"] = RETRY_AFTER
    if status == 308:
        headers["Location"] = LOCATION
        del response["content"]
    response["headers"] = headers
    return response


class ContractSchema(OpenAPISchema):
    def __init__(self, api: "NinjaAPI", path_prefix: str) -> None:
        self.creates: list[tuple[str, str, str]] = []  # (path, operationId, response status) of create operations
        super().__init__(api, path_prefix)
        self["tags"] = [{"name": name, "description": text} for name, text in TAGS]
        components = self["components"]
        components["schemas"]["Error"] = Error.model_json_schema(mode="serialization")
        components["securitySchemes"] = SECURITY_SCHEMES
        describe_schemas(components["schemas"])
        self._examples()
        self._links()

    def operation_details(self, operation: "Operation") -> dict[str, Any]:
        result = super().operation_details(operation)
        result["summary"] = summary(operation.view_func.__name__)
        result.setdefault("description", result["summary"] + ".")
        by_status: dict[int, list[str]] = defaultdict(list)
        for code in sorted(error_codes(operation)):
            by_status[errors.CODES[code][0]].append(code)
        responses = result["responses"]
        for status, codes in sorted(by_status.items()):
            responses[status] = _error_response(status, codes)
        limited = any(isinstance(auth, BearerAuth | OrgAuth) for auth in _auth_of(operation))
        for status, response in responses.items():
            if limited and (status < 300 or status == 429):
                headers = response.setdefault("headers", {})
                headers["RateLimit-Policy"], headers["RateLimit"] = RATELIMIT_POLICY, RATELIMIT
            if status < 300:
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = REQUEST_ID
                if "POST" in operation.methods:
                    headers["Idempotent-Replayed"] = REPLAYED
        parameters = result.setdefault("parameters", [])
        for parameter in parameters:
            parameter.setdefault("description", parameter_text(parameter["name"]))
            if parameter["in"] == "path" and parameter["name"] in PATH_ID_PREFIXES:
                # Stated, not enforced by ninja: a malformed id is a 404 like any unknown one (not a 422).
                parameter["schema"] = {**parameter["schema"], "pattern": _id_pattern(parameter["name"])}
        if "POST" in operation.methods:
            parameters.append(dict(IDEMPOTENCY_KEY))
        parameters.append(dict(X_REQUEST_ID))
        return result

    def operation_security(self, operation: "Operation") -> list[dict[str, Any]] | None:
        schemes: list[dict[str, Any]] = []
        for auth in _auth_of(operation):
            if isinstance(auth, BearerAuth):
                schemes.append({"UserToken": []})
            elif isinstance(auth, OrgAuth):
                schemes.append({"UserToken": []})
                if not auth.users_only:
                    schemes.append({"ApiKey": []})
        return schemes or None

    def _operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(path, method, op) for path, ops in self["paths"].items() for method, op in ops.items()]

    def _examples(self) -> None:
        """An example on every JSON request and response body, built from the property examples."""
        schemas = self["components"]["schemas"]
        for _path, _method, op in self._operations():
            bodies = [op.get("requestBody", {})] + [r for s, r in op["responses"].items() if int(s) < 300]
            for body in bodies:
                for media_type, content in body.get("content", {}).items():
                    if "example" not in content and "schema" in content and media_type == "application/json":
                        content["example"] = example_for_schema(content["schema"], schemas)

    def _links(self) -> None:
        """From each create operation to the operations on the object it made (`.../{x_id}`), so a client (and
        Schemathesis' stateful phase) knows the new `id` feeds them."""
        by_path: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for path, method, op in self._operations():
            by_path[path].append((method, op))
        for path, method, op in self._operations():
            if method != "post" or not any(int(s) == 201 for s in op["responses"]):
                continue
            for other_path, ops in by_path.items():
                match = re.fullmatch(re.escape(path) + r"/\{([a-z_]+_id)\}", other_path)
                if not match:
                    continue
                links = {}
                for other_method, other in ops:
                    parameters = {match.group(1): "$response.body#/id"}
                    if "{slug}" in other_path:
                        parameters["slug"] = "$request.path.slug"
                    links[other["operationId"]] = {
                        "operationId": other["operationId"],
                        "parameters": parameters,
                        "description": f"`{other_method.upper()}` the object just created.",
                    }
                for status, response in op["responses"].items():
                    if int(status) == 201:
                        response["links"] = links
