"""Cost and correctness of the tenant context, direct and through PgBouncer in transaction mode.

Runs the real server (gunicorn, 2 workers x 4 threads) four times against one bench database with three
organizations whose agents are named after them: {baseline, pinned} x {direct, PgBouncer (transaction mode, pool
of 3)}. `baseline` is django-tenants' own backend (a session-level `SET search_path`, as this service had before);
`pinned` is config.db (path and role pinned per transaction). Each run: CLIENTS threads reading single agents and
agent lists of random organizations for SECONDS; it reports throughput, p50/p95 latency, transactions per request
(pg_stat_database) and responses holding another organization's rows.

Usage: .venv/bin/python bench/pooler.py [seconds]
"""

import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import BENCH_DB, ROOT, fresh_database, machine, summary

CLIENTS = 16
ORGS = ("bench-a", "bench-b", "bench-c")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup() -> tuple[dict[str, str], dict[str, list[str]]]:
    fresh_database()
    from django.core.cache import cache

    from public_app.models import User
    from public_app.services.auth import token_issue
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import organization_provision
    from public_app.tenancy import tenant_context
    from tenant_apps.agents.models import Agent

    cache.clear()
    tokens, agent_ids = {}, {}
    for slug in ORGS:
        owner = User.objects.create_user(f"{slug}@example.com", "a-strong-pass-91", name=slug)
        org = organization_create(user=owner, name=slug, slug=slug)
        organization_provision(organization_id=org.id)
        org.refresh_from_db()
        with tenant_context(org):
            agents = Agent.objects.bulk_create([Agent(name=f"{slug}:agent {i}", prompt="x" * 200) for i in range(20)])
        tokens[slug] = token_issue(user=owner)
        agent_ids[slug] = [agent.uid for agent in agents]
    return tokens, agent_ids


def transactions() -> int:
    import psycopg

    time.sleep(1.2)  # statistics reach pg_stat_database when a backend's counters are flushed
    with psycopg.connect(BENCH_DB, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0])


def run(label: str, settings_module: str, database_url: str, seconds: float, tokens: dict, agent_ids: dict) -> dict:
    import httpx

    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": settings_module, "HOST": "127.0.0.1",
           "PORT": str(port), "WEB_CONCURRENCY": "2", "WEB_THREADS": "4", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT), "DB_CONN_MAX_AGE": "60"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                               "config.wsgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1/organizations"
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        samples: list[float] = []
        counts = {"requests": 0, "foreign": 0, "errors": 0}
        lock = threading.Lock()

        def client(seed: int, until: float, record: bool) -> None:
            rng = random.Random(seed)
            with httpx.Client(timeout=30) as http:
                while time.monotonic() < until:
                    slug = rng.choice(ORGS)
                    headers = {"Authorization": f"Bearer {tokens[slug]}"}
                    if rng.random() < 0.7:
                        url = f"{base}/{slug}/agents/{rng.choice(agent_ids[slug])}"
                    else:
                        url = f"{base}/{slug}/agents?limit=20"
                    started = time.perf_counter()
                    response = http.get(url, headers=headers)
                    elapsed = time.perf_counter() - started
                    if not record:
                        continue
                    body = response.json() if response.status_code == 200 else {}
                    names = [item["name"] for item in body.get("items", [body])] if body else []
                    with lock:
                        counts["requests"] += 1
                        samples.append(elapsed)
                        if response.status_code != 200:
                            counts["errors"] += 1
                        elif any(not name.startswith(slug) for name in names):
                            counts["foreign"] += 1

        def load(duration: float, record: bool) -> float:
            until = time.monotonic() + duration
            threads = [threading.Thread(target=client, args=(i, until, record)) for i in range(CLIENTS)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.monotonic() - started

        load(2, record=False)  # warm-up: connections, caches
        before = transactions()
        elapsed = load(seconds, record=True)
        after = transactions()
    finally:
        server.terminate()
        server.wait(timeout=30)
    stats = summary(samples)
    return {"label": label, "rps": counts["requests"] / elapsed, "p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"],
            "tx_per_request": (after - before) / max(counts["requests"], 1), **counts}  # fmt: skip


def main(seconds: float) -> None:
    tokens, agent_ids = setup()
    pooler_dir = tempfile.mkdtemp(prefix="bench-pgbouncer-")
    pooler_port = free_port()
    subprocess.run(["bash", str(ROOT / ".ci" / "pgbouncer"), "start", pooler_dir, str(pooler_port)], check=True)
    pooled_url = BENCH_DB.replace(":5432/", f":{pooler_port}/")
    try:
        results = [
            run("baseline, direct", "bench.settings_baseline", BENCH_DB, seconds, tokens, agent_ids),
            run("pinned, direct", "config.settings", BENCH_DB, seconds, tokens, agent_ids),
            run("baseline, pgbouncer", "bench.settings_baseline", pooled_url, seconds, tokens, agent_ids),
            run("pinned, pgbouncer", "config.settings", pooled_url, seconds, tokens, agent_ids),
        ]
    finally:
        subprocess.run(["bash", str(ROOT / ".ci" / "pgbouncer"), "stop", pooler_dir], check=False)
    print(f"machine: {machine()}; {CLIENTS} client threads, gunicorn 2x4, {seconds:.0f} s per run")
    print(f"{'run':<22} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'tx/req':>7} {'requests':>9} {'foreign':>8} "
          f"{'errors':>7}")  # fmt: skip
    for r in results:
        print(f"{r['label']:<22} {r['rps']:>7.0f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} {r['tx_per_request']:>7.2f} "
              f"{r['requests']:>9} {r['foreign']:>8} {r['errors']:>7}")  # fmt: skip
    by = {r["label"]: r for r in results}
    print(f"throughput pinned/baseline, direct: {by['pinned, direct']['rps'] / by['baseline, direct']['rps']:.2f}x "
          f"(target >= 0.9x)")  # fmt: skip
    print(f"throughput pinned via pgbouncer / baseline direct: "
          f"{by['pinned, pgbouncer']['rps'] / by['baseline, direct']['rps']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 15)
