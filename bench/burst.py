"""A provisioning burst against the running service (issue 18, item 4): BURST organizations created over the API as
fast as the web workers, the job workers and the spare pool allow, while clients of existing organizations keep
calling them.

    .venv/bin/python bench/burst.py [BURST] [--spares N] [--creators C] [--job-threads J] [--provisioning-threads P]
    (defaults: 1000, 2, 8, 4, 2; P = 0: the one job worker provisions too, as before the provisioner existed)

Starts the service with its own run command (`python -m config.launch`: 2 web workers, 4 job threads, a private
redis-server each for cache and broker, its own database), signs up 10 users who own 10 existing organizations with
50 agents each, then:

1. quiet: 4 client threads call `GET /organizations/<existing>/agents?limit=20` round-robin, 10 times a second
   each (steady traffic, well below saturation), for QUIET seconds: p50/p99 (the baseline, same service);
2. burst: C creator threads (one user each, in turn) `POST /organizations` BURST times, while the same 4 client
   threads go on; measured until every new organization is active: the existing organizations' p50/p99 during
   the burst and its ratio to the quiet one, non-2xx answers, POST p50/p99, organizations per second, and the
   time from created to provisioned (`provisioned_at - created_at`) p50/p99/max.

Prints a Markdown table for docs/benchmarks.md. The machine is shared and noisy: compare ratios within one run.
"""

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dependencies import PrivateRedis  # noqa: E402
from tests.pooler import free_port, wait_until  # noqa: E402
from tests.service import Service  # noqa: E402

DB = "orgs_bench_burst"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
ROLE_PREFIX = "orgs_bburst_"
EXISTING = 10
AGENTS = 50
PROBES = 4
PROBE_RATE = 10.0  # requests per second per client thread: steady traffic, not a load test that saturates the CPU
QUIET = 30.0


def option(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


OPTIONS = ("--spares", "--creators", "--job-threads", "--provisioning-threads")


def numbers() -> list[str]:
    skip = {sys.argv.index(n) + 1 for n in OPTIONS if n in sys.argv}
    return [a for i, a in enumerate(sys.argv[1:], 1) if not a.startswith("--") and i not in skip]


def drop_database() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [ROLE_PREFIX]):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def pct(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


class Probe:
    """Client threads calling the existing organizations; each sample is (when, seconds, status)."""

    def __init__(self, base: str, tokens: list[str], slugs: list[str]) -> None:
        self.base, self.tokens, self.slugs = base, tokens, slugs
        self.samples: list[tuple[float, float, int]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(PROBES)]

    def run(self, index: int) -> None:
        turn = index
        with httpx.Client(base_url=self.base, timeout=30) as client:
            next_at = time.perf_counter()
            while not self.stop.is_set():
                next_at += 1 / PROBE_RATE
                time.sleep(max(0.0, next_at - time.perf_counter()))
                slot = turn % len(self.slugs)
                turn += PROBES
                started = time.perf_counter()
                try:
                    headers = {"Authorization": f"Bearer {self.tokens[slot]}"}
                    path = f"/api/v1/organizations/{self.slugs[slot]}/agents?limit=20"
                    status = client.get(path, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    self.samples.append((started, time.perf_counter() - started, status))

    def between(self, start: float, end: float) -> tuple[list[float], int]:
        with self.lock:
            window = [(s, status) for when, s, status in self.samples if start <= when < end]
        return [s for s, status in window if status == 200], sum(1 for _, status in window if status != 200)


def main() -> None:
    args = numbers()
    burst = int(args[0]) if args else 1000
    spares = option("--spares", 2)
    creators = option("--creators", 8)
    job_threads = option("--job-threads", 4)
    provisioning_threads = option("--provisioning-threads", 2)
    drop_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    cache, broker = PrivateRedis(tmp).start(), PrivateRedis(tmp).start()
    service = Service(tmp, URL, broker.url, cache.url, TENANT_ROLE_PREFIX=ROLE_PREFIX, LOG_LEVEL="ERROR",
                      DB_CONN_MAX_AGE="60", TENANT_SPARE_SCHEMAS=str(spares))  # fmt: skip
    service.port = free_port()
    service.base = f"http://127.0.0.1:{service.port}"
    service.process = service.processes.start(
        "serve", [sys.executable, "-m", "config.launch", "--host", "127.0.0.1", "--port", str(service.port),
                  "--web-workers", "2", "--job-threads", str(job_threads),
                  "--provisioning-threads", str(provisioning_threads)], service.env,
    )  # fmt: skip
    try:
        wait_until(lambda: httpx.get(f"{service.base}/healthz", timeout=2).status_code == 200, 180, "the service")
        tokens, slugs = [], []
        for i in range(EXISTING):
            tokens.append(service.sign_up(f"owner{i}@example.com"))
            slugs.append(f"existing-{i}")
            service.create_organization(slugs[-1])
        wait_until(lambda: service.statuses_of(slugs)["active"] == EXISTING, 120, "the existing organizations")
        for token, slug in zip(tokens, slugs, strict=True):
            for n in range(AGENTS):
                service.call("POST", f"/api/v1/organizations/{slug}/agents", {"name": f"Agent {n}"}, token=token)
        probe = Probe(service.base, tokens, slugs)
        for thread in probe.threads:
            thread.start()
        time.sleep(2)  # warm
        quiet_start = time.perf_counter()
        time.sleep(QUIET)
        quiet_end = time.perf_counter()

        new_slugs = [f"burst-{n:04d}" for n in range(burst)]
        queue = list(new_slugs)
        queue_lock = threading.Lock()
        posts: list[float] = []
        post_errors: list[int] = []

        def create(index: int) -> None:
            token = tokens[index % len(tokens)]
            with httpx.Client(base_url=service.base, timeout=60) as client:
                while True:
                    with queue_lock:
                        if not queue:
                            return
                        slug = queue.pop(0)
                    started = time.perf_counter()
                    response = client.post("/api/v1/organizations", json={"name": slug.title(), "slug": slug},
                                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                    with queue_lock:
                        posts.append(time.perf_counter() - started)
                        if response.status_code != 202:
                            post_errors.append(response.status_code)

        burst_start = time.perf_counter()
        workers = [threading.Thread(target=create, args=(i,)) for i in range(creators)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        posted = time.perf_counter() - burst_start
        wait_until(lambda: service.statuses_of(new_slugs)["active"] == burst, 1800, "the burst's organizations")
        burst_end = time.perf_counter()
        probe.stop.set()
        for thread in probe.threads:
            thread.join()

        with psycopg.connect(URL, autocommit=True) as conn:
            delays = [row[0] for row in conn.execute(
                "SELECT extract(epoch FROM provisioned_at - created_at)::float FROM public_app_organization "
                "WHERE slug = ANY(%s)", [new_slugs]).fetchall()]  # fmt: skip
        quiet, quiet_errors = probe.between(quiet_start, quiet_end)
        during, during_errors = probe.between(burst_start, burst_end)
        flood, _ = probe.between(burst_start, burst_start + posted)  # while the POSTs come in
        drain, _ = probe.between(burst_start + posted, burst_end)  # then while the workers catch up
        took = burst_end - burst_start
        rows = [
            ("existing organizations, quiet", f"{len(quiet)} requests, {quiet_errors} non-200",
             f"p50 {pct(quiet, .5):.1f} ms, p99 {pct(quiet, .99):.1f} ms"),
            ("existing organizations, during the burst", f"{len(during)} requests, {during_errors} non-200",
             f"p50 {pct(during, .5):.1f} ms, p99 {pct(during, .99):.1f} ms "
             f"(p99 {pct(during, .99) / pct(quiet, .99):.2f}x quiet)"),
            ("… while the POSTs come in", f"{len(flood)} requests",
             f"p50 {pct(flood, .5):.1f} ms, p99 {pct(flood, .99):.1f} ms"),
            ("… then while the workers catch up", f"{len(drain)} requests",
             f"p50 {pct(drain, .5):.1f} ms, p99 {pct(drain, .99):.1f} ms" if drain else "-"),
            (f"`POST /organizations` x {burst}", f"{creators} clients, {len(post_errors)} non-202",
             f"p50 {pct(posts, .5):.1f} ms, p99 {pct(posts, .99):.1f} ms; all answered in {posted:.1f} s"),
            (f"{burst} organizations active",
             f"spare pool {spares}, {provisioning_threads or job_threads} provisioning threads",
             f"{took:.1f} s ({burst / took:.1f}/s)"),
            ("created → provisioned", "`provisioned_at - created_at`",
             f"p50 {statistics.median(delays) * 1000:.0f} ms, p99 {pct(delays, .99):.0f} ms, "
             f"max {max(delays) * 1000:.0f} ms"),
        ]  # fmt: skip
        command = (
            f"bench/burst.py {burst} --spares {spares} --creators {creators} --job-threads {job_threads} "
            f"--provisioning-threads {provisioning_threads}"
        )
        print(f"\n`.venv/bin/python {command}`\n")
        print("| measurement | how | result |\n|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        service.stop()
        drop_database()
        cache.kill()
        broker.kill()


if __name__ == "__main__":
    main()
