"""The request path against a bare Django view, over real HTTP (issue 17): wrk against the service's own run command.

    .venv/bin/python bench/request_path.py [SECONDS] [CONNECTIONS] [ROUNDS]   (needs `wrk`: apt-get install wrk)

Starts the service (`python -m config.launch`, 2 web workers × 4 threads, as the issue measured) on its own
database and two private redis-servers (cache, broker), signs up, creates an organization with 200 agents (200-character
prompts), then runs wrk for SECONDS (default 10) with CONNECTIONS (default 32) against: `/healthz` (a bare view
through the same middleware: the baseline), `GET /api/v1/me`, the agents list with `limit=20` and `limit=200`,
and `POST` an agent, in ROUNDS (default 3) interleaved rounds: this machine's speed drifts by tens of percent
from one minute to the next, so each round's ratios are taken against that round's bare view, and the medians are
printed. Prints requests/s, p50/p99, the ratio to the baseline, and Redis commands and PostgreSQL transactions per
request (from Redis `INFO commandstats` and `pg_stat_database`, before and after each run).
"""

import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dependencies import PrivateRedis  # noqa: E402
from tests.pooler import free_port, wait_until  # noqa: E402
from tests.service import Service  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 32
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DB = "orgs_bench_request_path"
ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
CACHE = ""  # a private redis-server of its own, so its command counts are this service's cache traffic alone


def redis_calls() -> int:
    import redis

    stats = redis.Redis.from_url(CACHE).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))


def pg_transactions() -> int:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [DB])
        return int(row.fetchone()[0])


def wrk(url: str, token: str | None, script: str | None = None) -> dict:
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    if script:
        args += ["-s", script]
    before_redis, before_pg = redis_calls(), pg_transactions()
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    after_redis, after_pg = redis_calls(), pg_transactions()
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"), "p99": latency("99"), "errors": int(non_2xx.group(1)) if non_2xx else 0,
        "redis": (after_redis - before_redis) / requests, "pg": (after_pg - before_pg) / requests,
    }  # fmt: skip


def main() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    global CACHE
    tmp = Path(tempfile.mkdtemp(prefix="bench-request-path-"))
    cache, broker = PrivateRedis(tmp).start(), PrivateRedis(tmp).start()
    CACHE = cache.url
    # Production's connection reuse (the test helper's default closes connections after each request).
    service = Service(tmp, f"postgres://postgres@127.0.0.1:5432/{DB}", broker.url, cache.url,
                      TENANT_ROLE_PREFIX="orgs_brp_", LOG_LEVEL="ERROR", DB_CONN_MAX_AGE="60",
                      TENANT_SPARE_SCHEMAS="0")  # fmt: skip
    service.port = free_port()
    service.base = f"http://127.0.0.1:{service.port}"
    service.process = service.processes.start(
        "serve", [sys.executable, "-m", "config.launch", "--host", "127.0.0.1", "--port", str(service.port),
                  "--web-workers", "2", "--job-threads", "2"], service.env,
    )  # fmt: skip
    try:
        wait_until(lambda: httpx.get(f"{service.base}/healthz", timeout=2).status_code == 200, 180, "the service")
        token = service.sign_up("bench@example.com")
        service.create_organization("bench")
        wait_until(lambda: service.statuses_of(["bench"])["active"] == 1, 60, "the organization")
        for i in range(200):
            service.call("POST", "/api/v1/organizations/bench/agents", {"name": f"Agent {i}", "prompt": "x" * 200})
        post = tmp / "post.lua"
        post.write_text('wrk.method = "POST"\nwrk.body = \'{"name": "Bench agent"}\'\n'
                        'wrk.headers["Content-Type"] = "application/json"\n')  # fmt: skip
        base = f"{service.base}/api/v1"
        targets = {
            "bare view (/healthz)": (f"{service.base}/healthz", None, None),
            "GET /me": (f"{base}/me", token, None),
            "agents, limit=20": (f"{base}/organizations/bench/agents?limit=20", token, None),
            "agents, limit=200": (f"{base}/organizations/bench/agents?limit=200", token, None),
            "POST agent": (f"{base}/organizations/bench/agents", token, str(post)),
        }
        rounds: list[dict[str, dict]] = []
        for _ in range(ROUNDS):
            rounds.append({name: wrk(*target) for name, target in targets.items()})
        print(f"wrk -t2 -c{CONNECTIONS} -d{SECONDS}s, 2 web workers, {ROUNDS} rounds (medians); ratio = requests/s "
              "against the same round's bare view")  # fmt: skip
        print(f"{'endpoint':24} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'redis/req':>9} "
              f"{'pg tx/req':>9} {'non-2xx':>7}")  # fmt: skip
        summary = {}
        for name in targets:
            runs = [r[name] for r in rounds]
            ratios = [r[name]["rps"] / r["bare view (/healthz)"]["rps"] for r in rounds]
            row = {m: statistics.median(run[m] for run in runs) for m in ("rps", "p50", "p99", "redis", "pg")}
            row["ratio"] = statistics.median(ratios)
            row["errors"] = sum(run["errors"] for run in runs)
            summary[name] = row
            print(f"{name:24} {row['rps']:8.0f} {row['ratio']:6.2f} {row['p50']:7.2f} {row['p99']:7.2f} "
                  f"{row['redis']:9.2f} {row['pg']:9.2f} {row['errors']:7d}")  # fmt: skip
        print(json.dumps({k: {m: round(v, 3) for m, v in r.items()} for k, r in summary.items()}))
    finally:
        service.stop()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
            for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'orgs\\_brp\\_%'").fetchall():
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        cache.kill()
        broker.kill()


if __name__ == "__main__":
    main()
