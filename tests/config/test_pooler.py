"""Isolation through a connection pooler in transaction mode: the real server (gunicorn, several workers and
threads) and a real job worker reach the database only through a private PgBouncer with 3 server connections, so
transactions from different requests, organizations and jobs constantly share server sessions.

This is the setup that, before tenant context became transaction-scoped, returned another organization's rows in
nearly half of all single-agent reads and wrote a third of new agents into the wrong schema."""

import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from django.db import connection

from tests.conftest import Receiver, drop_tenant_schemas
from tests.fakes.leadsforce import FakeLeadsforce
from tests.pooler import Processes, pgbouncer, service_env, start_web, start_worker, wait_until

ORGS = ("leak-a", "leak-b", "leak-c")
REQUESTS = int(os.environ.get("LEAK_TEST_REQUESTS", "20000"))
CLIENTS = 8
PASSWORD = "a-strong-pass-91"
# Every text we write starts with the organization's slug; a response or row carrying another prefix is a leak.
OWNED_FIELDS = ("name", "first_name", "label", "email")
KINDS = ("agents", "campaigns", "leads", "phone-numbers")


def body_for(kind: str, slug: str, n: int) -> dict[str, Any]:
    if kind == "agents":
        return {"name": f"{slug}:agent {n}", "prompt": f"{slug} prompt"}
    if kind == "campaigns":
        return {"name": f"{slug}:campaign {n}"}
    if kind == "leads":
        return {"first_name": f"{slug}:lead", "last_name": str(n), "email": f"{slug}-{n}@example.com"}
    return {"e164": f"+1{ORGS.index(slug) + 2}{n:09d}", "label": f"{slug}:line {n}"}


def foreign_values(payload: Any, slug: str) -> list[str]:
    """Owned text fields anywhere in a response that do not belong to `slug`."""
    found: list[str] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in OWNED_FIELDS and isinstance(value, str) and value and not value.startswith(slug):
                found.append(value)
            elif isinstance(value, dict | list):
                found += foreign_values(value, slug)
    elif isinstance(payload, list):
        for item in payload:
            found += foreign_values(item, slug)
    return found


class Load:
    """CLIENTS threads sharing REQUESTS requests over the organizations' tenant resources."""

    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens
        self.lock = threading.Lock()
        self.remaining = REQUESTS
        self.statuses: Counter[int] = Counter()
        self.leaks: list[tuple[str, str, list[str]]] = []
        self.created: dict[str, Counter[str]] = {slug: Counter() for slug in ORGS}
        self.deleted: dict[str, Counter[str]] = {slug: Counter() for slug in ORGS}
        self.ids: dict[tuple[str, str], list[str]] = {(slug, kind): [] for slug in ORGS for kind in KINDS}
        self.counter = 0
        self.errors: list[str] = []
        self.gone: set[tuple[str, str, str]] = set()  # deleted (slug, kind, id): a concurrent read may get 404

    def take(self) -> int | None:
        with self.lock:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
            self.counter += 1
            return self.counter

    def run_client(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=f"{self.base}/api/v1/organizations", timeout=30) as client:
            while (n := self.take()) is not None:
                slug = rng.choice(ORGS)
                kind = rng.choice(KINDS)
                try:
                    self.one(client, rng, slug, kind, n)
                except Exception as exc:  # every failure is reported, none stops the load
                    with self.lock:
                        self.errors.append(f"{slug} {kind}: {type(exc).__name__}: {exc}")

    def one(self, client: httpx.Client, rng: random.Random, slug: str, kind: str, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[slug]}"}
        ids = self.ids[(slug, kind)]
        roll = rng.random()
        path = f"/{slug}/{kind}"
        target = ""
        if roll < 0.30 or not ids:
            response = client.post(path, json=body_for(kind, slug, n), headers=headers)
            if response.status_code == 201:
                with self.lock:
                    ids.append(response.json()["id"])
                    self.created[slug][kind] += 1
        elif roll < 0.60:
            response = client.get(f"{path}?limit=20", headers=headers)
        elif roll < 0.85:
            target = rng.choice(ids)
            response = client.get(f"{path}/{target}", headers=headers)
        elif roll < 0.95 and kind in ("agents", "campaigns"):
            target = rng.choice(ids)
            response = client.patch(f"{path}/{target}", json={"name": f"{slug}:renamed {n}"},
                                    headers=headers)  # fmt: skip
        else:
            with self.lock:
                target = ids.pop(rng.randrange(len(ids))) if len(ids) > 1 else ""
            if not target:
                response = client.get(path, headers=headers)
            else:
                with self.lock:
                    self.gone.add((slug, kind, target))
                response = client.delete(f"{path}/{target}", headers=headers)
                if response.status_code == 204:
                    with self.lock:
                        self.deleted[slug][kind] += 1
        with self.lock:
            status = response.status_code
            if status == 404 and (slug, kind, target) in self.gone:
                status = 0  # read or renamed while another client deleted it: the right answer
            self.statuses[status] += 1
        if response.content and response.headers.get("content-type", "").startswith("application/json"):
            leaked = foreign_values(response.json(), slug)
            if leaked:
                with self.lock:
                    self.leaks.append((slug, f"{response.request.method} {response.request.url.path}", leaked[:3]))


def rows_by_schema(schema_names: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Every owned text of every tenant table, read directly (login role) from each organization's schema."""
    tables = {"agents": ("agents_agent", "name"), "campaigns": ("campaigns_campaign", "name"),
              "leads": ("leads_lead", "email"), "phone-numbers": ("phone_numbers_phonenumber", "label")}  # fmt: skip
    result: dict[str, dict[str, list[str]]] = {}
    with connection.cursor() as cursor:
        for slug, schema in schema_names.items():
            result[slug] = {}
            for kind, (table, column) in tables.items():
                cursor.execute(f'SELECT {column} FROM "{schema}".{table}')
                result[slug][kind] = [row[0] for row in cursor.fetchall()]
    return result


@pytest.mark.django_db(transaction=True)
def test_no_leak_through_a_transaction_pooler_under_concurrent_load(tenant_template, tmp_path):
    receivers = {slug: Receiver() for slug in ORGS}
    leadsforce = FakeLeadsforce()
    for slug in ORGS:
        key = f"lf_{slug}"
        leadsforce.keys[key] = f"{slug} sales"
        leadsforce.leads_by_key[key] = [
            {"id": f"{slug}-{i}", "first_name": f"{slug}:lf", "last_name": str(i), "email": f"{slug}-lf{i}@example.com",
             "phone": "", "created_at": "2026-11-01T10:00:00Z"}
            for i in range(150)
        ]  # fmt: skip
    processes = Processes(tmp_path)
    try:
        with pgbouncer(pool_size=3, log_dir=tmp_path) as pooler_port:
            env = service_env(
                pooler_port, LEADSFORCE_API_URL=leadsforce.url, WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
                WEBHOOK_RETRY_SCHEDULE="0,1,1", TENANT_SPARE_SCHEMAS="2",
            )  # fmt: skip
            base = start_web(processes, env)
            worker = start_worker(processes, env)
            # The scheduler's first tick refills the spare pool; claims during the run refill it again.
            processes.start("scheduler", [sys.executable, "manage.py", "scheduler"], env)
            api = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
            tokens: dict[str, str] = {}
            for slug in (*ORGS, "provisioner"):
                signup = api.post("/auth/signup", json={"email": f"{slug}@example.com", "password": PASSWORD,
                                                        "name": slug})  # fmt: skip
                assert signup.status_code == 201, signup.text
                tokens[slug] = signup.json()["token"]

            def org_status(slug: str) -> str:
                owner = tokens.get(slug, tokens["provisioner"])
                return api.get(f"/organizations/{slug}", headers={"Authorization": f"Bearer {owner}"}).json()["status"]

            for slug in ORGS:
                auth = {"Authorization": f"Bearer {tokens[slug]}"}
                assert api.post("/organizations", json={"name": slug, "slug": slug}, headers=auth).status_code == 202
            for slug in ORGS:
                wait_until(lambda slug=slug: org_status(slug) == "active", 60, f"{slug} active", worker)
                auth = {"Authorization": f"Bearer {tokens[slug]}"}
                hook = api.post(f"/organizations/{slug}/webhooks", headers=auth,
                                json={"url": receivers[slug].url, "events": ["lead.created"]})  # fmt: skip
                assert hook.status_code == 201, hook.text
                connected = api.put(f"/organizations/{slug}/integrations/leadsforce", headers=auth,
                                    json={"api_key": f"lf_{slug}"})  # fmt: skip
                assert connected.status_code == 200, connected.text

            load = Load(base, tokens)
            stop_jobs = threading.Event()
            extra_orgs: list[str] = []

            def job_traffic() -> None:
                """Meanwhile: Leadsforce syncs and new organizations being provisioned, all through the pooler."""
                provisioner = {"Authorization": f"Bearer {tokens['provisioner']}"}
                k = 0
                while not stop_jobs.is_set():
                    for slug in ORGS:
                        api.post(f"/organizations/{slug}/integrations/leadsforce/sync",
                                 headers={"Authorization": f"Bearer {tokens[slug]}"})  # fmt: skip
                    extra = f"extra-{k}"
                    if api.post("/organizations", json={"name": extra, "slug": extra},
                                headers=provisioner).status_code == 202:  # fmt: skip
                        extra_orgs.append(extra)
                    k += 1
                    stop_jobs.wait(2)

            started = time.monotonic()
            threads = [threading.Thread(target=load.run_client, args=(seed,)) for seed in range(CLIENTS)]
            jobs_thread = threading.Thread(target=job_traffic)
            for thread in [*threads, jobs_thread]:
                thread.start()
            for thread in threads:
                thread.join()
            stop_jobs.set()
            jobs_thread.join()
            elapsed = time.monotonic() - started

            for slug in extra_orgs:
                wait_until(lambda slug=slug: org_status(slug) == "active", 120, f"{slug} active", worker)
            for slug in ORGS:  # a last sync after the load, so every organization ends with all of its leads
                api.post(f"/organizations/{slug}/integrations/leadsforce/sync",
                         headers={"Authorization": f"Bearer {tokens[slug]}"})  # fmt: skip
            schemas = dict(connection.cursor().execute(
                "SELECT slug, schema_name FROM public_app_organization WHERE slug LIKE 'leak-%%'"
            ).fetchall())  # fmt: skip

            def leadsforce_done() -> bool:
                rows = rows_by_schema(schemas)
                return all(sum("-lf" in e for e in rows[slug]["leads"]) == 150 for slug in ORGS)

            wait_until(leadsforce_done, 120, "every Leadsforce sync", worker)
            expected_hooks = {slug: load.created[slug]["leads"] for slug in ORGS}
            wait_until(lambda: all(len(receivers[s].requests) >= expected_hooks[s] + 150 for s in ORGS), 120,
                       "every lead.created delivery", worker)  # fmt: skip
            spares = connection.cursor().execute("SELECT count(*) FROM public_app_spareschema").fetchone()[0]
            wait_until(lambda: connection.cursor().execute("SELECT count(*) FROM public_app_spareschema").fetchone()[0]
                       == 2, 60, "the spare pool refilled", worker)  # fmt: skip
            print(f"\n{REQUESTS} requests by {CLIENTS} clients in {elapsed:.1f}s ({REQUESTS / elapsed:.0f}/s), "
                  f"statuses {dict(load.statuses)}, {len(extra_orgs)} organizations provisioned meanwhile, "
                  f"spares {spares}")  # fmt: skip

            # 1. No response carried another organization's rows, and nothing failed.
            assert load.errors == []
            assert load.leaks == []
            assert sum(load.statuses.values()) == REQUESTS
            assert not [s for s in load.statuses if s >= 500], load.statuses
            assert set(load.statuses) <= {0, 200, 201, 204}, load.statuses
            # 2. Every row is in its own organization's schema, and every 201 left exactly one row.
            rows = rows_by_schema(schemas)
            for slug in ORGS:
                for kind in KINDS:
                    misplaced = [value for value in rows[slug][kind] if not value.startswith(slug)]
                    assert misplaced == [], (slug, kind, misplaced[:5])
                    own = [v for v in rows[slug][kind] if "-lf" not in v]
                    assert len(own) == load.created[slug][kind] - load.deleted[slug][kind], (slug, kind)
            # 3. Jobs behind the pooler: each organization's webhooks carried only its own leads.
            for slug in ORGS:
                for request in receivers[slug].requests:
                    event = json.loads(request["body"])
                    assert event["organization"]["slug"] == slug
                    assert event["data"]["lead"]["email"].startswith(f"{slug}-")
            # 4. The new organizations' schemas hold nothing of anybody.
            extra_rows = rows_by_schema(dict(connection.cursor().execute(
                "SELECT slug, schema_name FROM public_app_organization WHERE slug LIKE 'extra-%%'"
            ).fetchall()))  # fmt: skip
            assert all(not values for tables in extra_rows.values() for values in tables.values())
            processes.stop_all()  # before the pooler goes
            for name in ("web", "worker", "scheduler"):
                assert re.search(r"ERROR|Traceback", processes.log(name)) is None, processes.log(name)[-3000:]
    finally:
        processes.stop_all()
        for receiver in receivers.values():
            receiver.close()
        leadsforce.close()
        drop_tenant_schemas()


def leading(processes: Processes, name: str) -> bool:
    return "scheduler: leading" in processes.log(name)


@pytest.mark.django_db(transaction=True)
def test_exactly_one_scheduler_leads_through_the_pooler_and_another_takes_over(tmp_path):
    processes = Processes(tmp_path)
    try:
        with pgbouncer(pool_size=2, log_dir=tmp_path) as pooler_port:
            env = service_env(pooler_port, SCHEDULER_LEASE_SECONDS="3", SCHEDULER_INTERVAL_SECONDS="3600")
            command = [sys.executable, "manage.py", "scheduler"]
            first = processes.start("first", command, env)
            second = processes.start("second", command, env)
            wait_until(lambda: leading(processes, "first") or leading(processes, "second"), 30, "a leader")
            time.sleep(4)  # longer than the lease: the follower keeps trying every second and must not get it
            leaders = [name for name in ("first", "second") if leading(processes, name)]
            assert len(leaders) == 1, (processes.log("first"), processes.log("second"))
            leader, follower = (first, "second") if leaders == ["first"] else (second, "first")
            # The leader dies without releasing anything: the follower takes over once the lease has expired.
            processes.stop(leader, signal.SIGKILL)
            wait_until(lambda: leading(processes, follower), 15, "the follower to take over")
            processes.stop_all()  # before the pooler goes
    finally:
        processes.stop_all()
