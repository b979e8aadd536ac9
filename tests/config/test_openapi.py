"""The OpenAPI document is a contract clients generate from: every operation documents its errors with the one
`Error` schema, has a short id, a tag, a summary and a description; every property and parameter is described; bodies
carry examples. (That the documented errors are the ones really answered is checked on every test's responses:
tests/contract.py.)"""

import re
from typing import Any

import pytest

from config.api import api
from config.openapi import TAGS, error_body
from public_app import errors
from tests.contract import check

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return api.get_openapi_schema()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_operation_ids_are_short_unique_camel_case(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]{2,40}", op_id) for op_id in ids), ids
    assert {"listLeads", "createInvitation", "getOrganization", "importLeads"} <= set(ids)


def test_every_operation_has_a_known_tag_a_summary_and_a_description(document: dict[str, Any]) -> None:
    tag_names = {name for name, _ in TAGS}
    assert {t["name"] for t in document["tags"]} == tag_names
    for path, method, op in operations(document):
        assert len(op["tags"]) == 1 and op["tags"][0] in tag_names, (path, method, op.get("tags"))
        assert op["summary"] and op["description"], (path, method)


def test_every_property_and_parameter_is_described(document: dict[str, Any]) -> None:
    missing = [
        f"{name}.{prop}"
        for name, schema in document["components"]["schemas"].items()
        for prop, details in schema.get("properties", {}).items()
        if not details.get("description")
    ]
    missing += [
        f"{op['operationId']}({p['name']})"
        for _, _, op in operations(document)
        for p in op.get("parameters", [])
        if not p.get("description")
    ]
    assert missing == []


def test_every_json_body_has_an_example(document: dict[str, Any]) -> None:
    missing = []
    for _, _, op in operations(document):
        bodies = [("request", op.get("requestBody", {})), *op["responses"].items()]
        for where, body in bodies:
            for media_type, content in body.get("content", {}).items():
                if media_type == "application/json" and content.get("example") is None:
                    missing.append(f"{op['operationId']} {where}")
    assert missing == []


def test_every_error_response_uses_the_error_schema_and_known_codes(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"code", "message", "details"}
    assert set(error["required"]) == {"code", "message"}
    for _, _, op in operations(document):
        statuses = {int(s) for s in op["responses"]}
        assert statuses & {401, 404, 422, 503}, op["operationId"]
        for status, response in op["responses"].items():
            if int(status) < 300:
                continue
            codes = response["x-error-codes"]
            assert codes and all(errors.CODES[code][0] == int(status) for code in codes), (op["operationId"], status)
            assert all(f"`{code}`" in response["description"] for code in codes)
            if int(status) != 308:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            if int(status) in (429, 503):
                assert "Retry-After" in response["headers"]


def test_error_codes_follow_from_auth_and_inputs(document: dict[str, Any]) -> None:
    ops = {op["operationId"]: op for _, _, op in operations(document)}

    def codes(op_id: str, status: int) -> list[str]:
        return ops[op_id]["responses"].get(status, {}).get("x-error-codes", [])

    assert codes("listPlans", 401) == []  # no auth
    assert codes("getMe", 401) == ["not_authenticated"]
    assert "permission_denied" in codes("createApiKey", 403)  # API keys and members may not
    assert codes("getOrganization", 403) == []  # every role reads its organization
    assert {"not_found"} == set(codes("getAgent", 404))
    assert "slug_taken" in codes("createOrganization", 409)
    assert "idempotency_key_reused" in codes("createAgent", 409)
    assert "invalid_json" in codes("updateAgent", 400)
    assert codes("getMe", 422) == ["validation_error"]  # NUL in the query, as anywhere
    assert codes("getMe", 414) == ["uri_too_long"]  # the HTTP server's own limits
    assert "organization_provisioning" in codes("listAgents", 503)


def test_security_schemes_tell_user_tokens_from_api_keys(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {name: s["bearerFormat"] for name, s in schemes.items()} == {"UserToken": "ut_…", "ApiKey": "ak_…"}
    ops = {op["operationId"]: op for _, _, op in operations(document)}
    assert ops["getMe"]["security"] == [{"UserToken": []}]
    assert ops["createApiKey"]["security"] == [{"UserToken": []}]  # API keys never manage API keys
    assert ops["listAgents"]["security"] == [{"UserToken": []}, {"ApiKey": []}]
    assert "security" not in ops["listPlans"]


def test_headers_are_declared(document: dict[str, Any]) -> None:
    for _, method, op in operations(document):
        names = {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert ("Idempotency-Key" in names) == (method == "post"), op["operationId"]
        assert "X-Request-ID" in names
        for status, response in op["responses"].items():
            assert "X-Request-ID" in response["headers"], (op["operationId"], status)
            if method == "post" and int(status) < 300:
                assert "Idempotent-Replayed" in response["headers"]


def test_the_bulk_import_declares_json_and_csv_bodies(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/organizations/{slug}/leads/import"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/json", "text/csv"}
    assert body["content"]["application/json"]["schema"]["properties"]["leads"]["items"] == {
        "$ref": "#/components/schemas/LeadIn"
    }


def test_outputs_state_their_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def enum_of(schema: str, prop: str) -> list[str]:
        details = schemas[schema]["properties"][prop]
        ref = details.get("$ref") or next((o["$ref"] for o in details.get("anyOf", []) if "$ref" in o), None)
        return schemas[ref.rsplit("/", 1)[-1]]["enum"] if ref else details["enum"]

    # Roles are open (an organization's custom roles join the built-in ones): a string, described as such.
    role = schemas["MemberOut"]["properties"]["role"]
    assert role["type"] == "string" and "enum" not in role and "custom roles" in role["description"]
    assert enum_of("OrganizationOut", "status") == ["provisioning", "active", "failed", "deleting"]
    assert "pending" in enum_of("InvitationOut", "status")
    assert enum_of("PlanOut", "code") == ["free", "team", "business"]
    assert enum_of("CheckoutIn", "plan") == ["team", "business"]


def test_links_lead_from_a_create_to_the_new_object(document: dict[str, Any]) -> None:
    created = document["paths"]["/api/v1/organizations/{slug}/agents"]["post"]["responses"][201]
    assert created["links"]["getAgent"]["parameters"] == {
        "agent_id": "$response.body#/id",
        "slug": "$request.path.slug",
    }
    assert {"getAgent", "updateAgent", "deleteAgent"} <= set(created["links"])


def test_the_contract_check_flags_what_the_document_does_not_say() -> None:
    body = b'{"code": "not_found", "message": "Not found.", "details": null}'
    assert check("GET", "/api/v1/organizations/acme/agents/x", 404, body) is None
    assert "status 409 is not documented" in (check("GET", "/api/v1/me", 409, body) or "")
    teapot = b'{"code": "slug_taken", "message": "x", "details": null}'
    assert "is not listed" in (check("POST", "/api/v1/organizations/acme/agents", 409, teapot) or "")
    assert "not the Error shape" in (check("GET", "/api/v1/organizations/acme/agents/x", 404, b'{"detail": 1}') or "")
    assert check("GET", "/api/v1/no-such-thing", 404, b"") is None  # not an operation


def test_error_bodies_are_built_by_the_documented_schema() -> None:
    assert error_body("not_found", "Not found.") == {"code": "not_found", "message": "Not found.", "details": None}


SLUGS = ["acme", "a-b", "abc", "p-x", "pa1", "phx-2", "pgx", "pg-1", "ab", "a" * 49, "a--b", "-ab", "ab-", "Abc",
         "1ab", "api", "admin", "ac_me", "a" * 48, "x9-y8-z7"]  # fmt: skip
NAMES = ["Acme", "  Acme ", "", " ", "\t\n", "a\u202eb", "a\x00", "\u00a0", "é", "a\u2028", "Zoë 🚀", "\x85"]


def test_the_slug_rules_in_the_schema_are_the_services(document: dict[str, Any]) -> None:
    from public_app import errors as app_errors
    from public_app.services.organizations import slug_validate

    rule = document["components"]["schemas"]["OrganizationCreateIn"]["properties"]["slug"]
    for slug in SLUGS:
        by_schema = (
            rule["minLength"] <= len(slug) <= rule["maxLength"]
            and re.search(rule["pattern"], slug) is not None
            and slug not in rule["not"]["enum"]
        )
        try:
            slug_validate(slug)
            by_service = True
        except app_errors.ValidationFailed:
            by_service = False
        assert by_schema == by_service, slug


def test_the_name_rules_in_the_schema_are_the_validators(document: dict[str, Any]) -> None:
    from pydantic import TypeAdapter, ValidationError

    from public_app.fields import Name

    rule = document["components"]["schemas"]["OrganizationCreateIn"]["properties"]["name"]
    adapter = TypeAdapter(Name)
    for name in NAMES:
        by_schema = len(name) >= rule["minLength"] and re.search(rule["pattern"], name) is not None
        try:
            adapter.validate_python(name)
            by_validator = True
        except ValidationError:
            by_validator = False
        assert by_schema == by_validator, repr(name)
