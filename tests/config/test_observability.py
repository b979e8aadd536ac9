"""Request ids, structured logs without secrets, Prometheus metrics, and production settings."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.logging import ContextFilter, JsonFormatter, log_context_clear, log_context_set, redact
from tests.conftest import PASSWORD, Api, wait_for_jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_logs():
    """Everything logged during the test, formatted as production would (JSON, context filter, redaction)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.django_db
def test_every_response_has_a_request_id(api, alice):
    generated = alice.api.get("/api/v1/me")
    assert len(generated["X-Request-ID"]) == 32
    assert alice.api.get("/api/v1/me", **{"X-Request-ID": "trace-123"})["X-Request-ID"] == "trace-123"
    hostile = alice.api.get("/api/v1/me", **{"X-Request-ID": "bad id\nwith newline" * 10})["X-Request-ID"]
    assert hostile != "bad id\nwith newline" and len(hostile) == 32


@pytest.mark.django_db
def test_no_secret_reaches_the_logs(acme, alice, api, json_logs):
    from public_app.models import Invitation
    from public_app.services.invitations import invitation_token

    login = api.post("/api/v1/auth/login", {"email": "alice@example.com", "password": PASSWORD})
    user_token = login.json()["token"]
    key = alice.api.post("/api/v1/organizations/acme/api-keys", {"name": "k", "role": "member"}).json()["key"]
    uid = alice.api.post("/api/v1/organizations/acme/invitations", {"email": "x@example.com", "role": "member"})
    invite = invitation_token(Invitation.objects.get(uid=uid.json()["id"]))
    # requests that make Django log their path (404, 403, 401) with secrets in them
    api.get(f"/api/v1/invitations/{invite}x")
    Api(key).get("/api/v1/me")
    Api(user_token + "x").get("/api/v1/me")
    logging.getLogger("test").warning("careless: Authorization: Bearer %s key=%s", user_token, key)
    logging.getLogger("test").error("secret %s", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0")
    output = json_logs.getvalue()
    assert "careless" in output and "[redacted]" in output
    for secret in (user_token, key, invite, key.split("_", 2)[2], "whsec_c2VjcmV0c2VjcmV0c2VjcmV0", PASSWORD):
        assert secret not in output


@pytest.mark.django_db
def test_log_lines_carry_request_organization_and_caller(acme, carol, json_logs):
    carol.api.post("/api/v1/organizations/acme/invitations", {"email": "x@example.com", "role": "member"},
                   **{"X-Request-ID": "req-42"})  # fmt: skip
    (forbidden,) = [line for line in lines(json_logs) if "Forbidden" in line["message"]]
    assert forbidden["request_id"] == "req-42"
    assert forbidden["org"] == "acme"
    assert forbidden["actor"] == f"user:{carol.user.id}"
    assert forbidden["level"] == "WARNING"


def test_job_log_lines_carry_the_actor_message_id_and_organization(json_logs):
    from dramatiq import Message

    from jobs.middleware import LogContextMiddleware
    from public_app.models import Organization
    from public_app.tenancy import tenant_context

    message = Message(queue_name="q", actor_name="deliver_webhook", args=(1, 2), kwargs={}, options={})
    middleware = LogContextMiddleware()
    middleware.before_process_message(None, message)
    with tenant_context(Organization(slug="acme", schema_name="t_abc")):
        logging.getLogger("jobs").info("working")
    logging.getLogger("jobs").info("after the tenant work")
    middleware.after_process_message(None, message)
    logging.getLogger("jobs").info("done")
    working, after, done = [line for line in lines(json_logs) if line["logger"] == "jobs"]
    assert (working["job"], working["message_id"], working["org"]) == (
        "deliver_webhook", message.message_id, "acme"
    )  # fmt: skip
    assert (after["job"], after.get("org")) == ("deliver_webhook", None)
    assert "job" not in done


def test_text_format_and_redaction_helpers():
    log_context_set(request_id="r1", org="acme")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", ("ut_abcdefghijklmnop",), None)
    ContextFilter().filter(record)
    log_context_clear()
    assert record.getMessage() == "token [redacted]"
    assert (record.request_id, record.org, record.job) == ("r1", "acme", "-")
    assert redact("Authorization: bearer abc.def-ghijklmn") == "Authorization: [redacted]"


def test_metrics_show_requests_and_jobs_and_organizations(worker, client, settings):
    owner = Api()
    signup = owner.post("/api/v1/auth/signup", {"email": "m@example.com", "password": PASSWORD, "name": "M"})
    owner.token = signup.json()["token"]
    owner.post("/api/v1/organizations", {"name": "Metered", "slug": "metered"})
    wait_for_jobs(worker)
    owner.get("/api/v1/organizations/metered/agents")
    body = client.get("/metrics").content.decode()
    assert 'http_requests_total{method="GET",route="api/v1/organizations/<slug>/agents",status="200"}' in body
    assert "http_request_duration_seconds_bucket" in body
    assert 'dramatiq_jobs_total{actor="provision_organization",outcome="succeeded"}' in body
    assert 'dramatiq_job_duration_seconds_count{actor="provision_organization"}' in body
    assert 'organizations{status="active"} 1.0' in body


@pytest.mark.django_db
def test_metrics_are_protected(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 404
    settings.METRICS_ALLOW_NETWORKS = []  # the default: loopback is not trusted (a proxy on the host is loopback)
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def test_check_deploy_is_clean_with_production_settings():
    env = {
        "PATH": os.environ["PATH"],
        "APP_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "x7!Qm2#rV9zL4@pW8sT1&kN6bY3^hJ0eC5uF2dG8aZ4-qR7tP1mX9wS3vB6nL0kJ",
        "FIELD_ENCRYPTION_KEYS": "yt3LRqV6B1Zr8fG3u9b5mQ2Xc7pW4kS0hJ1nD6eA8vI=",
        "ALLOWED_HOSTS": "api.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://app.example.com",
        "SECURE_HSTS_PRELOAD": "true",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {"PATH": os.environ["PATH"], "APP_ENV": "production", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("DB_CONN_MAX_AGE", "soon", "not an integer"), ("RATELIMIT_ENABLED", "maybe", "not a boolean"),
     ("BROKER_URL", "kafka://x", "BROKER_URL"), ("WEBHOOK_RETRY_SCHEDULE", "1,x", "WEBHOOK_RETRY_SCHEDULE")],
)  # fmt: skip
def test_malformed_settings_fail_loudly(name, value, message):
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", name: value}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
