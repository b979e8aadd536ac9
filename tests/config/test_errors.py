"""Every error under /api/ has the body of API.md; bad input never gives a 500 or HTML."""

import pytest


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [b"{bad", b"[1,", b'{"name": NaN}', b"\xff\xfe", b'"just a string'])
def test_malformed_json_is_400_invalid_json(alice, raw):
    assert_error(alice.api.post("/api/v1/organizations", raw=raw), 400, "invalid_json")


@pytest.mark.django_db
def test_json_of_the_wrong_shape_is_422(alice):
    assert_error(alice.api.post("/api/v1/organizations", [1, 2]), 422, "validation_error")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v2/organizations", "/api/", "/api/v1/organizations/acme/nope"])
def test_unknown_api_paths_are_json_404(alice, path):
    assert_error(alice.api.get(path), 404, "not_found")


@pytest.mark.django_db
def test_wrong_method_is_json_405(alice):
    assert_error(alice.api.request("PUT", "/api/v1/auth/login"), 405, "method_not_allowed")


@pytest.mark.django_db
def test_body_over_one_mebibyte_is_413(alice):
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'", "slug": "big"}'
    assert_error(alice.api.post("/api/v1/organizations", raw=big), 413, "payload_too_large")


@pytest.mark.django_db
def test_validation_details_name_the_field(alice):
    r = alice.api.post("/api/v1/organizations", {"name": "x" * 201, "slug": "fine-slug"})
    assert_error(r, 422, "validation_error")
    assert [d["field"] for d in r.json()["details"]] == ["name"]


@pytest.mark.django_db
def test_unexpected_exceptions_are_json_500(acme, alice, monkeypatch):
    from tenant_apps.agents import api as agents_api

    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(agents_api, "agent_list", boom)
    assert_error(alice.api.get("/api/v1/organizations/acme/agents"), 500, "internal_error")


def test_openapi_and_docs_are_served(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/api/v1/organizations/{slug}/agents" in paths
    assert "/api/v1/auth/signup" in paths
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert b"openapi.json" in docs.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/v1/organizations/acme/leads?source=a%00b", "/api/v1/organizations/acme/audit-log?action=x%00",
     "/api/v1/organizations/acme/agents/1%00"],
)  # fmt: skip
def test_nul_in_query_or_path_is_422_never_500(acme, alice, path):
    assert_error(alice.api.get(path), 422, "validation_error")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/v1/organizations/acme/webhooks", '{"url": "http://a.example/\\u0000", "events": ["ping"]}'),
     ("/api/v1/organizations/acme/billing/portal", '{"return_url": "https://a.example/\\u0000"}'),
     ("/api/v1/organizations/acme/leads", '{"email": "a@example.com", "extra\\u0000": 1}')],
)  # fmt: skip
def test_nul_anywhere_in_a_json_body_is_422(acme, alice, path, body):
    assert_error(alice.api.post(path, raw=body.encode()), 422, "validation_error")


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [b"[null,null]", b"42", b"null", b'"x"', b"[]", b"true"])
def test_a_body_that_is_not_an_object_is_422_and_changes_nothing(acme, alice, raw):
    """Before: PATCH with `[null,null]`, `42`, `null` or `"x"` answered 200, having changed nothing."""
    created = alice.api.post("/api/v1/organizations/acme/agents", {"name": "Kept"})
    agent = created.json()["id"]
    organization = alice.api.get("/api/v1/organizations/acme").json()
    for method, path in (("PATCH", f"/api/v1/organizations/acme/agents/{agent}"),
                         ("PATCH", "/api/v1/organizations/acme"),
                         ("POST", "/api/v1/organizations/acme/campaigns")):  # fmt: skip
        response = alice.api.request(method, path, raw=raw)
        assert_error(response, 422, "validation_error")
        assert "JSON object" in response.json()["details"][0]["message"]
    assert alice.api.get(f"/api/v1/organizations/acme/agents/{agent}").json()["name"] == "Kept"
    assert alice.api.get("/api/v1/organizations/acme/campaigns").json()["items"] == []
    assert alice.api.get("/api/v1/organizations/acme").json() == organization


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-13-01T00:00:00Z", "yesterday"])
def test_a_query_instant_must_be_an_iso_8601_date_time(acme, alice, value):
    """Before: `?created_after=0.5` was read as a Unix timestamp and accepted."""
    response = alice.api.get(f"/api/v1/organizations/acme/leads?created_after={value}")
    assert_error(response, 422, "validation_error")
    assert response.json()["details"][0]["field"] == "created_after"
    assert alice.api.get("/api/v1/organizations/acme/leads?created_after=2026-01-01T00:00:00Z").status_code == 200


@pytest.mark.django_db
def test_timestamps_come_back_at_the_precision_they_were_sent(acme, alice):
    """Before: `…05.123456Z` came back as `…05.123Z`."""
    sent = "2027-01-02T03:04:05.123456Z"
    created = alice.api.post("/api/v1/organizations/acme/campaigns", {"name": "Precise", "starts_at": sent})
    assert created.status_code == 201, created.content
    assert created.json()["starts_at"] == sent
    fetched = alice.api.get(f"/api/v1/organizations/acme/campaigns/{created.json()['id']}").json()
    assert fetched["starts_at"] == sent
    assert fetched["created_at"].endswith("Z") and len(fetched["created_at"]) == len("2027-01-02T03:04:05.123456Z")
