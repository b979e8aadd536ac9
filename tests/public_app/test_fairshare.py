"""Fair share per organization (issue 19): rate limits per credential and per organization, query budgets, fair job
queues, and the usage ops see. Two organizations throughout: one organization's limits never touch the other's."""

import json as jsonlib
import threading
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from public_app.fairshare import Bucket, Take, usage_recent, usage_report
from public_app.models import Organization, OutboxMessage
from public_app.outbox import enqueue, job_finished, release_held
from public_app.tenancy import tenant_context
from tests.conftest import Api, Persona, make_org

PLANS = ("free", "team", "business")


def limits(settings: Any, *, org: int = 1000, credential: int = 1000, burst_seconds: int = 60) -> None:
    settings.RATELIMIT_ORG_PER_MINUTE = dict.fromkeys(PLANS, org)
    settings.RATELIMIT_CREDENTIAL_PER_MINUTE = dict.fromkeys(PLANS, credential)
    settings.RATELIMIT_BURST_SECONDS = burst_seconds


def api_key(owner: Persona, slug: str, name: str = "k") -> Api:
    response = owner.api.post(f"/api/v1/organizations/{slug}/api-keys", {"name": name, "role": "member"})
    assert response.status_code == 201, response.content
    return Api(response.json()["key"])


def test_a_key_over_its_limit_gets_429_with_the_draft_headers_and_nothing_changes(committed, settings):
    owner: Persona = committed["owner"]
    key = api_key(owner, "acme")
    limits(settings, org=100, credential=3)
    seen = []
    for _ in range(3):
        response = key.get("/api/v1/organizations/acme/agents")
        assert response.status_code == 200
        seen.append(response["RateLimit"])
    assert response["RateLimit-Policy"] == '"organization";q=100;w=60, "api_key";q=3;w=60'
    assert seen == ['"api_key";r=2;t=20', '"api_key";r=1;t=40', '"api_key";r=0;t=60']
    refused = key.post("/api/v1/organizations/acme/agents", {"name": "Nope"})
    assert refused.status_code == 429
    assert refused.json() == {
        "code": "rate_limited",
        "message": "Too many requests for this API key: 3 per minute.",
        "details": {"policy": "api_key", "limit_per_minute": 3},
    }
    assert 1 <= int(refused["Retry-After"]) <= 20
    assert refused["RateLimit"].startswith('"api_key";r=0;t=')
    assert owner.api.get("/api/v1/organizations/acme/agents").json()["items"] == []  # nothing was created
    # the organization's other credentials are not held back by this key's bucket
    assert owner.api.get("/api/v1/organizations/acme/agents").status_code == 200


def test_an_organizations_keys_together_are_held_to_its_quota_and_the_other_organization_is_untouched(
    committed, settings
):
    owner: Persona = committed["owner"]
    other: Persona = committed["other"]
    first, second = api_key(owner, "acme", "a"), api_key(owner, "acme", "b")
    limits(settings, org=4, credential=100)
    statuses = [k.get("/api/v1/organizations/acme/agents").status_code for k in (first, second, first, second)]
    assert statuses == [200, 200, 200, 200]
    refused = second.get("/api/v1/organizations/acme/agents")
    assert refused.status_code == 429
    assert refused.json()["details"] == {"policy": "organization", "limit_per_minute": 4}
    assert refused.json()["message"] == "Too many requests for this organization: 4 per minute."
    assert owner.api.get("/api/v1/organizations/acme").status_code == 429  # the same organization's quota
    for _ in range(4):  # globex has its own bucket
        assert other.api.get("/api/v1/organizations/globex/agents").status_code == 200


def test_an_outsider_cannot_spend_another_organizations_quota(committed, settings):
    owner: Persona = committed["owner"]
    other: Persona = committed["other"]
    limits(settings, org=3, credential=100)
    for _ in range(10):
        assert other.api.get("/api/v1/organizations/acme/agents").status_code == 404
    response = owner.api.get("/api/v1/organizations/acme/agents")
    assert response.status_code == 200
    assert response["RateLimit"] == '"organization";r=2;t=20'  # only the owner's request was taken from it


def test_a_user_token_has_a_bucket_per_organization_and_one_outside_them(committed, settings):
    owner: Persona = committed["owner"]
    make_org(owner.user, "initech")
    limits(settings, org=100, credential=2)
    assert [owner.api.get("/api/v1/organizations/acme").status_code for _ in range(3)] == [200, 200, 429]
    assert owner.api.get("/api/v1/organizations/initech").status_code == 200
    me = owner.api.get("/api/v1/me")
    assert me.status_code == 200 and me["RateLimit-Policy"] == '"user_token";q=2;w=60'


def test_ops_overrides_apply_on_the_next_request(committed, settings):
    owner: Persona = committed["owner"]
    acme: Organization = committed["acme"]
    limits(settings, org=100, credential=100)
    assert owner.api.get("/api/v1/organizations/acme/agents")["RateLimit-Policy"].startswith('"organization";q=100')
    out = StringIO()
    call_command("orgs", "limits", "acme", "--requests-per-minute", "7", "--query-budget-ms", "250", stdout=out)
    assert "requests_per_minute                     7  (override)" in out.getvalue()
    response = owner.api.get("/api/v1/organizations/acme/agents")
    assert response["RateLimit-Policy"] == '"organization";q=7;w=60, "user_token";q=100;w=60'
    acme.refresh_from_db()
    assert (acme.limit_requests_per_minute, acme.statement_timeout_ms) == (7, 250)
    call_command("orgs", "limits", "acme", "--requests-per-minute", "plan", stdout=StringIO())
    assert owner.api.get("/api/v1/organizations/acme/agents")["RateLimit-Policy"].startswith('"organization";q=100')
    with pytest.raises(Exception, match="at least 1 per minute"):
        call_command("orgs", "limits", "acme", "--requests-per-minute", "0", stdout=StringIO())


def test_a_bucket_refills_at_its_rate(committed, settings):
    owner: Persona = committed["owner"]
    limits(settings, org=100, credential=60, burst_seconds=1)  # one token, one more each second
    assert owner.api.get("/api/v1/organizations/acme").status_code == 200
    refused = owner.api.get("/api/v1/organizations/acme")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    time.sleep(1.1)
    assert owner.api.get("/api/v1/organizations/acme").status_code == 200


def test_the_database_cache_keeps_the_same_buckets(transactional_db, settings):
    """The embedded fallback (CACHE_URL=db://): the same decisions through Django's cache API."""
    db_cache = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "fs_cache"}}
    settings.RATELIMIT_BURST_SECONDS = 60
    with override_settings(CACHES=db_cache):
        call_command("createcachetable", verbosity=0)
        try:
            take = Take([Bucket("ak:1", "api_key", 2), Bucket("org:9", "organization", 100)], organization_id=9)
            decisions = [take.run() for _ in range(3)]
            assert [d.allowed for d in decisions] == [True, True, False]
            assert decisions[1].remaining == (0, 98) and decisions[2].retry_after >= 1
            assert usage_recent()[9] == {"requests": 2, "rate_limited": 1, "query_timeouts": 0}
        finally:
            caches["default"].clear()
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE fs_cache")


def test_limits_fail_open_while_the_cache_is_unreachable(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2}}}  # fmt: skip
    assert Take([Bucket("ak:1", "api_key", 1)], organization_id=None).run() is None


def test_an_authenticated_request_with_limits_still_costs_one_cache_round_trip(committed, settings, round_trips):
    owner: Persona = committed["owner"]
    limits(settings, org=100, credential=100)
    owner.api.get("/api/v1/organizations/acme/agents")
    round_trips.reset()
    response = owner.api.get("/api/v1/organizations/acme/agents")
    assert response.status_code == 200 and response["RateLimit"]
    assert round_trips.redis == 1


# Query budgets


def test_tenant_work_runs_under_its_organizations_query_budget_and_public_work_does_not(committed, settings):
    acme: Organization = committed["acme"]
    globex: Organization = committed["globex"]
    Organization.objects.filter(id=acme.id).update(limit_query_budget_ms=1234)
    acme.refresh_from_db()
    settings.QUERY_BUDGET_MS_BY_PLAN = dict.fromkeys(PLANS, 4321)

    def timeout() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return cursor.fetchone()[0]

    with tenant_context(acme):
        assert timeout() == "1234ms"
    with tenant_context(globex):
        assert timeout() == "4321ms"
    assert timeout() == "0"  # public work: none, and nothing was left on the (possibly pooled) session


def test_jobs_run_under_the_jobs_budget(committed, settings):
    from config.db.base import budget_override

    settings.JOB_QUERY_BUDGET_MS = 60000
    seen = []

    def job() -> None:  # what jobs.middleware does around each message, in a worker thread
        budget_override.set(settings.JOB_QUERY_BUDGET_MS)
        with tenant_context(committed["acme"]), connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            seen.append(cursor.fetchone()[0])
        connection.close()

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert seen == ["1min"]


def test_a_request_over_the_query_budget_gets_503_query_timeout_and_is_counted(committed, settings):
    owner: Persona = committed["owner"]
    other: Persona = committed["other"]
    acme: Organization = committed["acme"]
    agent = owner.api.post("/api/v1/organizations/acme/agents", {"name": "Ann"}).json()
    Organization.objects.filter(id=acme.id).update(limit_query_budget_ms=200)
    call_command("orgs", "cache-flush", "--slug", "acme", stdout=StringIO())
    # Another session holds the agent's row: the update waits for it until the budget stops it.
    db = connection.settings_dict
    blocker = psycopg.connect(host=db["HOST"], port=db.get("PORT") or 5432, user=db["USER"], dbname=db["NAME"],
                              autocommit=False, prepare_threshold=None)  # fmt: skip
    # Without a budget the request would wait for the blocker, which lets go after 5 s: then it succeeds (200).
    letting_go = threading.Timer(5.0, blocker.rollback)
    try:
        blocker.execute(f'SELECT 1 FROM "{acme.schema_name}".agents_agent FOR UPDATE')
        letting_go.start()
        response = owner.api.patch(f"/api/v1/organizations/acme/agents/{agent['id']}", {"name": "Bo"})
    finally:
        letting_go.cancel()
        blocker.rollback()
        blocker.close()
    assert response.status_code == 503
    assert response.json() == {
        "code": "query_timeout",
        "message": "This request needed more than this organization's query budget (200 ms) and was stopped; "
        "narrow it (filters, a smaller `limit`) or try again later.",
        "details": {"budget_ms": 200},
    }
    assert response["Retry-After"]
    assert owner.api.get(f"/api/v1/organizations/acme/agents/{agent['id']}").json()["name"] == "Ann"
    assert usage_recent()[acme.id]["query_timeouts"] == 1
    assert other.api.get("/api/v1/organizations/globex/agents").status_code == 200  # globex is not affected
    metrics = Api().get("/metrics").content.decode()
    assert 'organization_query_timeouts_recent{organization="acme"} 1.0' in metrics
    assert "query_timeouts_total" in metrics


# Usage seen by ops


def test_usage_per_organization_in_metrics_top_n_and_other_and_in_orgs_show_and_top(committed, settings):
    owner: Persona = committed["owner"]
    other: Persona = committed["other"]
    acme: Organization = committed["acme"]
    limits(settings, org=3, credential=100)
    settings.METRICS_TOP_ORGANIZATIONS = 1
    for _ in range(5):
        owner.api.get("/api/v1/organizations/acme/agents")  # 3 let through, 2 refused
    other.api.get("/api/v1/organizations/globex/agents")
    metrics = Api().get("/metrics").content.decode()
    assert 'organization_requests_recent{organization="acme"} 3.0' in metrics
    assert 'organization_rate_limited_recent{organization="acme"} 2.0' in metrics
    assert 'organization_requests_recent{organization="other"} 1.0' in metrics  # globex, beyond the top 1
    assert "globex" not in metrics
    report = {row["organization"]: row for row in usage_report(top=5)}
    assert report["acme"]["requests"] == 3 and report["globex"]["requests"] == 1
    out = StringIO()
    call_command("orgs", "top", "--by", "requests", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1].split()[:3] == ["acme", "3", "2"] and lines[2].split()[:2] == ["globex", "1"]
    shown = StringIO()
    call_command("orgs", "show", "acme", "--json", stdout=shown)
    data = jsonlib.loads(shown.getvalue())
    assert data["usage_5m"]["requests"] == 3 and data["usage_5m"]["rate_limited"] == 2
    assert data["limits"]["requests_per_minute"] == 3
    assert acme.id not in [row.get("organization_id") for row in usage_report(top=0)]


# Fair job queues


def _relayed(org: Organization) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(organization_id=org.id, held=False, relay_count__gt=0).order_by("id"))


def test_one_organizations_backlog_is_held_at_its_share_and_never_ahead_of_another_organizations_job(
    committed, settings
):
    acme: Organization = committed["acme"]
    globex: Organization = committed["globex"]
    settings.JOB_ORG_CONCURRENCY = 2
    import dramatiq

    broker = dramatiq.get_broker()
    broker.flush_all()
    OutboxMessage.objects.all().delete()  # the provisioning jobs make_org asked for (it provisioned inline)
    # Delayed, so that a worker of another test never finishes them while this one looks (a relayed row is at the
    # broker whatever its delay).
    later = timedelta(minutes=5)
    for n in range(6):
        enqueue("deliver_webhook", acme.id, 1000 + n, organization=acme, delay=later)
    enqueue("deliver_webhook", globex.id, 1, organization=globex, delay=later)
    enqueue("send_webhook_disabled_email", acme.id, "we_x", organization=acme, delay=later)  # never held
    assert len(_relayed(acme)) == 3  # 2 deliveries and the email
    assert OutboxMessage.objects.filter(organization_id=acme.id, held=True).count() == 4
    assert len(_relayed(globex)) == 1  # globex's job went at once, behind only acme's share
    # A finished delivery releases acme's oldest held job, at once.
    first = _relayed(acme)[0]
    job_finished(str(first.message_id))
    assert OutboxMessage.objects.filter(organization_id=acme.id, held=True).count() == 3
    released = [row.args[1] for row in _relayed(acme) if row.actor_name == "deliver_webhook"]
    assert released == [1001, 1002]
    broker.flush_all()


def test_the_relay_loop_releases_what_a_dead_worker_left_held(committed, settings):
    acme: Organization = committed["acme"]
    settings.JOB_ORG_CONCURRENCY = 1
    import dramatiq

    dramatiq.get_broker().flush_all()
    OutboxMessage.objects.all().delete()
    for n in range(3):
        enqueue("deliver_webhook", acme.id, n, organization=acme, delay=timedelta(minutes=5))
    (running,) = _relayed(acme)
    OutboxMessage.objects.filter(id=running.id).delete()  # finished, but its worker died before releasing
    assert len(release_held()) == 1
    settings.JOB_ORG_CONCURRENCY = 0  # the cap lifted: everything goes
    assert len(release_held()) == 1
    dramatiq.get_broker().flush_all()
