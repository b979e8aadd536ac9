"""A noisy neighbour against the running service (issue 19, fair share per organization): 20 quiet organizations at
normal load while one organization sends 100x their rate and has a large job backlog; the quiet organizations' p50/p99
request latency and invitation-email delay, with and without the guardrails.

    .venv/bin/python bench/noisy_neighbour.py [--seconds 30] [--quiet-rate 2] [--noisy-factor 100] [--backlog 3000]
        [--endpoints 10] [--receiver-delay 1.5] [--invite-every 10] [--email-wait 30] [--quiet-threads 64]
        [--noisy-threads 32] [--noisy-leads 10000] [--noisy-head-start 0]

Starts the service with its own run command (`python -m config.launch`: 2 web workers, 4 job threads, a private
redis-server each for cache and broker, its own database `orgs_bench_noisy`, a local SMTP server and a local slow
webhook receiver, all on 127.0.0.1), signs up 21 users who own 20 quiet organizations (50 leads each) and one noisy
one (`--noisy-leads` leads, an API key, `--endpoints` webhook endpoints subscribed to `lead.created` that point at
the receiver, which answers 200 after `--receiver-delay` seconds). Then three phases, the service restarted with the
phase's knobs (GUARDRAILS below) before each; the database is kept:

1. quiet (guardrails on): the quiet organizations alone, each calling `GET /organizations/<quiet>/leads?limit=20`
   with its owner's token `--quiet-rate` times a second, open loop: each request is sent at its scheduled time from
   a pool of `--quiet-threads` threads and its latency counted from that time, so a slow server shows up as latency,
   not as fewer requests; each quiet organization also invites someone every `--invite-every` seconds, and the delay
   from the POST's 201 to the email reaching the SMTP server is measured (matched by recipient);
2. noisy, no guardrails: the same, plus the noisy organization: first a webhook backlog of `--backlog` deliveries
   (`POST /leads` with the owner's token: each lead emits `lead.created`, one delivery per endpoint; imports emit no
   events), then during the phase `--noisy-factor` x a quiet organization's rate of `GET .../leads?limit=200` with
   its API key, from a process of its own (so the quiet clients do not share its GIL) with at most `--noisy-threads`
   requests in flight; a thread that falls behind skips the slots it missed, so what it sends depends on how fast
   the server answers (the table shows the rate sent);
3. noisy, guardrails on: the same as 2 with the guardrails on.

Between the noisy phases the leftover backlog is dropped (service stopped: its pending deliveries are marked failed,
their outbox rows deleted and the private broker flushed), so each noisy phase starts from the same backlog. The
backlog is built under the phase's own knobs (with JOB_ORG_CONCURRENCY the fair-share outbox holds it back), so the
noisy organization's own bucket starts the phase short of those POSTs (its API key's bucket is full). Each phase's
line also gives the quiet p99 by slice of the window: with the guardrails on, the noisy organization's burst
allowance (RATELIMIT_BURST_SECONDS of its limits) shows up in the first slices; `--noisy-head-start` starts its load
that many seconds before the quiet organizations', to measure them past it.

Prints a Markdown table for docs/benchmarks.md. Target: with the guardrails on, the quiet organizations' p99 is less
than 10% above the quiet phase's and their email delay stays under 5 s. The machine is shared and noisy (and the
load generator runs on it): compare ratios within one run.
"""

import argparse
import contextlib
import http.client
import math
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dependencies import PrivateRedis  # noqa: E402
from tests.pooler import free_port, wait_until  # noqa: E402
from tests.service import Service  # noqa: E402

DB = "orgs_bench_noisy"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
ROLE_PREFIX = "orgs_bnoisy_"
QUIET_ORGS = 20
QUIET_LEADS = 50
NOISY = "noisy-neighbour"
WARM = 2.0  # seconds of load before the measured window

# The guardrails of issue 19, as the service's environment. Variables the running code does not know are ignored.
GUARDRAILS: dict[str, dict[str, str]] = {
    "off": {"RATELIMIT_ENABLED": "false", "JOB_ORG_CONCURRENCY": "0", "QUERY_BUDGET_MS": "0",
            "PROVISIONING_THREADS": "0"},
    # The defaults, with the free plan's limits stated so that they bite the noisy organization (quiet ones at
    # 2 requests a second use 120 a minute).
    "on": {"RATELIMIT_ENABLED": "true", "RATELIMIT_ORG_PER_MINUTE_FREE": "1200",
           "RATELIMIT_CREDENTIAL_PER_MINUTE_FREE": "600"},
}  # fmt: skip
# (name, guardrails, noisy neighbour present); ratios are against the first.
PHASES = (("quiet", "on", False), ("noisy, no guardrails", "off", True), ("noisy, guardrails on", "on", True))
# Every phase: production recovery intervals (tests.service shortens them for the fault tests; an 8 s outbox
# redelivery would re-send a backlog of thousands every 8 s), webhooks allowed to reach the local receiver, and the
# limits that are not the subject here out of the way (21 signups from one IP, invitations on the free plan's 5
# seats).
BASE_ENV = {
    "OUTBOX_REDELIVER_SECONDS": "120", "BROKER_HEARTBEAT_TIMEOUT_SECONDS": "60", "REDRIVE_AFTER_SECONDS": "120",
    "PROVISIONING_STUCK_SECONDS": "300", "SCHEDULER_INTERVAL_SECONDS": "60", "EMAIL_CLAIM_SECONDS": "300",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "RATELIMIT_SIGNUP_PER_HOUR": "10000",
    "RATELIMIT_INVITES_PER_ORG_PER_DAY": "100000", "RATELIMIT_INVITES_PER_EMAIL_PER_DAY": "100000",
    "FREE_PLAN_MAX_SEATS": "100000", "LOG_LEVEL": "ERROR", "DB_CONN_MAX_AGE": "60", "TENANT_SPARE_SCHEMAS": "0",
}  # fmt: skip


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def drop_database() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [ROLE_PREFIX]):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def pct(samples: list[float], share: float) -> float:
    """Milliseconds."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


# --- local servers: SMTP (invitation emails) and a slow webhook receiver -------------------------------------------


class Mailbox:
    """aiosmtpd handler: when each recipient's message arrived (perf_counter)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.perf_counter()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt.lower(), now)
        return "250 Message accepted for delivery"


class Receiver:
    """A webhook receiver that takes `delay` seconds per request and answers 200."""

    def __init__(self, delay: float) -> None:
        self.hits = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(delay)
                with receiver.lock:
                    receiver.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- load ------------------------------------------------------------------------------------------------------------


class Quiet:
    """The quiet organizations' clients. GETs, open loop: a scheduler sends each at its time (round-robin over the
    organizations, `rate` a second each) through a pool of `threads` threads, so a slow server shows up as latency
    (counted from the scheduled time) rather than as fewer requests, up to that many in flight. Invitations: one per
    organization every `invite_every` seconds, staggered, from 4 threads. Samples are (scheduled, seconds since
    scheduled, status)."""

    def __init__(self, base: str, tokens: list[str], slugs: list[str], rate: float, threads: int,
                 invite_every: float, tag: str) -> None:  # fmt: skip
        self.base, self.tokens, self.slugs, self.tag = base, tokens, slugs, tag
        self.rate = rate * len(slugs)
        self.invite_every = invite_every
        self.samples: list[tuple[float, float, int]] = []
        self.invites: dict[str, float] = {}  # email → perf_counter of the 201
        self.invite_errors: Counter[int] = Counter()
        self.inviting = threading.Event()
        self.until = math.inf
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="quiet")
        self.local = threading.local()
        self.clients: list[httpx.Client] = []
        self.threads = [threading.Thread(target=self.schedule, daemon=True)]
        self.threads += [threading.Thread(target=self.invite, args=(i, 4), daemon=True) for i in range(4)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, end: float) -> None:
        """Every GET scheduled before `end` is still sent and waited for, then all stop."""
        self.until = end
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.pool.shutdown(wait=True)
        for client in self.clients:
            client.close()

    def schedule(self) -> None:
        next_at, turn = time.perf_counter(), 0
        while next_at < self.until:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            if next_at >= self.until:
                break
            try:
                self.pool.submit(self.get, next_at, turn % len(self.slugs))
            except RuntimeError:  # the pool was shut down (Ctrl-C)
                return
            next_at, turn = next_at + 1 / self.rate, turn + 1

    def get(self, scheduled: float, slot: int) -> None:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(base_url=self.base, timeout=60)
            with self.lock:
                self.clients.append(client)
        path = f"/api/v1/organizations/{self.slugs[slot]}/leads?limit=20"
        try:
            status = client.get(path, headers={"Authorization": f"Bearer {self.tokens[slot]}"}).status_code
        except httpx.HTTPError:
            status = 0
        with self.lock:
            self.samples.append((scheduled, time.perf_counter() - scheduled, status))

    def invite(self, index: int, threads: int) -> None:
        mine = list(range(index, len(self.slugs), threads))
        while not self.inviting.wait(0.2):
            if self.stop.is_set():
                return
        started = time.perf_counter()
        sent = 0
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.stop.is_set():
                # Organization n invites at started + n/len × invite_every, then every invite_every seconds.
                round_, position = divmod(sent, len(mine))
                slot = mine[position]
                due = started + (round_ + slot / len(self.slugs)) * self.invite_every
                while not self.stop.is_set() and time.perf_counter() < due:
                    time.sleep(min(0.1, max(0.0, due - time.perf_counter())))
                if self.stop.is_set():
                    return
                email = f"{self.tag}-q{slot:02d}-{round_}@example.com"
                try:
                    response = client.post(f"/api/v1/organizations/{self.slugs[slot]}/invitations",
                                           json={"email": email, "role": "member"},
                                           headers={"Authorization": f"Bearer {self.tokens[slot]}"})  # fmt: skip
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    if status == 201:
                        self.invites[email] = time.perf_counter()
                    else:
                        self.invite_errors[status] += 1
                sent += 1

    def between(self, start: float, end: float) -> tuple[list[float], Counter[int]]:
        with self.lock:
            window = [(s, status) for when, s, status in self.samples if start <= when < end]
        errors = Counter(status for _, status in window if not 200 <= status < 300)
        return [s for s, status in window if 200 <= status < 300], errors


def noisy_load(base: str, key: str, path: str, rate: float, threads: int, seconds: float, results: Any) -> None:
    """In a process of its own: `rate` requests a second of `path` for `seconds`, open loop from `threads` threads
    (a thread that falls behind skips the slots it missed rather than bursting). Puts (statuses, latencies) in
    `results`."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds
    per_thread = rate / threads

    host, port = base.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {key}"}

    def run(index: int) -> None:
        # http.client, not httpx: a third of the CPU per request, and the load generator shares the machine.
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        next_at = time.perf_counter() + index / rate
        while next_at < end:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 0
            with lock:
                statuses[status] += 1
                latencies.append(time.perf_counter() - started)
            next_at += 1 / per_thread
            if next_at < time.perf_counter():
                next_at += math.ceil((time.perf_counter() - next_at) * per_thread) / per_thread
        conn.close()

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((dict(statuses), latencies))


# --- the service and the data -----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.cache, self.broker = PrivateRedis(tmp).start(), PrivateRedis(tmp).start()
        self.mailbox = Mailbox()
        from aiosmtpd.controller import Controller

        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=free_port())
        self.smtp.start()
        self.receiver = Receiver(args.receiver_delay)
        (tmp / "metrics").mkdir()
        self.service = Service(tmp, URL, self.broker.url, self.cache.url, self.smtp.port,
                               TENANT_ROLE_PREFIX=ROLE_PREFIX, PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
                               **BASE_ENV)  # fmt: skip
        self.base_env = dict(self.service.env)
        self.process: Any = None
        self.starts = 0
        self.quiet: Quiet | None = None
        self.child: Any = None

    def start(self, knobs: str) -> float:
        started = time.perf_counter()
        service = self.service
        service.env = {**self.base_env, **GUARDRAILS[knobs]}
        service.port = free_port()
        service.base = f"http://127.0.0.1:{service.port}"
        self.starts += 1
        self.process = service.processes.start(
            f"serve-{self.starts}", [sys.executable, "-m", "config.launch", "--host", "127.0.0.1", "--port",
                                     str(service.port), "--web-workers", "2", "--job-threads", "4"], service.env,
        )  # fmt: skip
        wait_until(lambda: httpx.get(f"{service.base}/healthz", timeout=2).status_code == 200, 180, "the service",
                   self.process)  # fmt: skip
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process is not None:
            self.service.processes.stop(self.process)
            self.process = None

    def close(self) -> None:
        if self.quiet is not None:  # interrupted mid-phase: stop the clients first
            self.quiet.until = -math.inf
            self.quiet.stop.set()
            self.quiet.pool.shutdown(wait=False, cancel_futures=True)
        if self.child is not None and self.child.is_alive():
            self.child.terminate()
            self.child.join(timeout=10)
        self.service.stop()
        with contextlib.suppress(Exception):
            self.smtp.stop()
        self.receiver.stop()
        self.cache.kill()
        self.broker.kill()

    def setup(self) -> None:
        service = self.service
        self.tokens, self.slugs = [], []
        for i in range(QUIET_ORGS):
            self.tokens.append(service.sign_up(f"quiet-owner-{i:02d}@example.com"))
            self.slugs.append(f"quiet-{i:02d}")
            service.create_organization(self.slugs[-1])
        self.noisy_token = service.sign_up("noisy-owner@example.com")
        service.create_organization(NOISY)
        every = [*self.slugs, NOISY]
        wait_until(lambda: service.statuses_of(every)["active"] == len(every), 300, "the organizations")
        for token, slug in zip(self.tokens, self.slugs, strict=True):
            self.import_leads(slug, token, QUIET_LEADS)
        self.import_leads(NOISY, self.noisy_token, self.args.noisy_leads)
        response = service.call("POST", f"/api/v1/organizations/{NOISY}/api-keys", {"name": "bench", "role": "admin"},
                                token=self.noisy_token)  # fmt: skip
        assert response.status_code == 201, response.text
        self.noisy_key = response.json()["key"]
        for n in range(self.args.endpoints):
            response = service.call("POST", f"/api/v1/organizations/{NOISY}/webhooks",
                                    {"url": f"{self.receiver.url}/{n}", "events": ["lead.created"]},
                                    token=self.noisy_token)  # fmt: skip
            assert response.status_code == 201, response.text
        with psycopg.connect(URL, autocommit=True) as conn:
            self.noisy_id, self.noisy_schema = conn.execute(
                "SELECT id, schema_name FROM public_app_organization WHERE slug = %s", [NOISY]).fetchone()  # fmt: skip

    def import_leads(self, slug: str, token: str, count: int) -> None:
        for first in range(0, count, 10_000):
            rows = [{"first_name": "Lead", "last_name": str(n), "email": f"lead{n}@{slug}.example.com"}
                    for n in range(first, min(count, first + 10_000))]  # fmt: skip
            response = self.service.call("POST", f"/api/v1/organizations/{slug}/leads/import", {"leads": rows},
                                         token=token)  # fmt: skip
            assert response.status_code == 201, response.text

    def pending_deliveries(self) -> int:
        with psycopg.connect(URL, autocommit=True) as conn:
            return conn.execute(
                f'SELECT count(*) FROM "{self.noisy_schema}".webhooks_webhookdelivery '
                "WHERE status IN ('pending', 'retrying')").fetchone()[0]  # fmt: skip

    def build_backlog(self, deliveries: int, tag: str) -> tuple[int, float, Counter[int]]:
        """`POST /leads` in the noisy organization until `deliveries` deliveries exist: each lead emits one
        `lead.created` per endpoint. 8 threads, the owner's token; a 429 is retried after its Retry-After."""
        posts = math.ceil(deliveries / self.args.endpoints)
        queue = list(range(posts))
        lock = threading.Lock()
        statuses: Counter[int] = Counter()

        def run() -> None:
            with httpx.Client(base_url=self.service.base, timeout=60,
                              headers={"Authorization": f"Bearer {self.noisy_token}"}) as client:  # fmt: skip
                while True:
                    with lock:
                        if not queue:
                            return
                        n = queue.pop()
                    body = {"first_name": "Backlog", "last_name": str(n), "email": f"{tag}-{n}@backlog.example.com"}
                    for _ in range(100):
                        try:
                            response = client.post(f"/api/v1/organizations/{NOISY}/leads", json=body)
                        except httpx.HTTPError:
                            time.sleep(0.5)
                            continue
                        with lock:
                            statuses[response.status_code] += 1
                        if response.status_code in (429, 503):
                            time.sleep(min(5.0, float(response.headers.get("Retry-After") or 1)))
                            continue
                        break

        started = time.perf_counter()
        workers = [threading.Thread(target=run, daemon=True) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return posts, time.perf_counter() - started, statuses

    def purge_backlog(self) -> int:
        """With the service stopped: what is left of the noisy organization's backlog is dropped (deliveries marked
        failed, their outbox rows deleted, the private broker emptied)."""
        import redis

        with psycopg.connect(URL, autocommit=True) as conn:
            dropped = conn.execute(
                f'UPDATE "{self.noisy_schema}".webhooks_webhookdelivery SET status = %s, next_attempt_at = NULL, '
                "locked_until = NULL, last_error = %s WHERE status IN ('pending', 'retrying')",
                ["failed", "dropped by bench/noisy_neighbour.py"]).rowcount  # fmt: skip
            conn.execute("DELETE FROM public_app_outboxmessage WHERE actor_name = 'deliver_webhook'")
        client = redis.Redis.from_url(self.broker.url)
        client.flushall()
        client.close()
        return dropped

    def phase(self, name: str, knobs: str, noisy: bool, index: int) -> dict[str, Any]:
        args = self.args
        result: dict[str, Any] = {"name": name, "knobs": knobs, "noisy": noisy}
        result["start_s"] = self.start(knobs)
        if index == 0:
            started = time.perf_counter()
            self.setup()
            log(f"set-up: {QUIET_ORGS} quiet organizations ({QUIET_LEADS} leads each), {NOISY} ({args.noisy_leads} "
                f"leads, {args.endpoints} webhook endpoints): {time.perf_counter() - started:.1f} s")  # fmt: skip
        if noisy:
            posts, took, statuses = self.build_backlog(args.backlog, f"p{index}")
            result["backlog_build"] = (posts, took, statuses)
            log(f"{name}: backlog of {args.backlog} deliveries = {posts} `POST /leads` in {took:.1f} s "
                f"({posts / took:.0f}/s; statuses {dict(statuses)})")  # fmt: skip
        result["pending_start"] = self.pending_deliveries()
        hits_start = self.receiver.hits
        quiet = self.quiet = Quiet(self.service.base, self.tokens, self.slugs, args.quiet_rate, args.quiet_threads,
                                   args.invite_every, f"p{index}")  # fmt: skip
        child, results = None, None
        total = args.noisy_head_start + WARM + args.seconds
        if noisy:
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            child = self.child = context.Process(target=noisy_load, daemon=True, args=(
                self.service.base, self.noisy_key, f"/api/v1/organizations/{NOISY}/leads?limit=200",
                args.quiet_rate * args.noisy_factor, args.noisy_threads, total, results))  # fmt: skip
            child.start()
            time.sleep(args.noisy_head_start)
        quiet.start()
        time.sleep(WARM)
        window_start = time.perf_counter()
        quiet.inviting.set()
        time.sleep(args.seconds)
        window_end = time.perf_counter()
        quiet.finish(window_end)
        if child is not None:
            result["noisy_statuses"], noisy_latencies = results.get(timeout=120)
            child.join(timeout=30)
            result["noisy_latencies"] = noisy_latencies
        # Emails still on their way: wait for them (up to --email-wait seconds after the window).
        deadline = time.perf_counter() + args.email_wait
        while time.perf_counter() < deadline:
            with self.mailbox.lock:
                if all(email in self.mailbox.arrived for email in quiet.invites):
                    break
            time.sleep(0.2)
        waited_until = time.perf_counter()
        with self.mailbox.lock:
            arrived = {e: self.mailbox.arrived[e] for e in quiet.invites if e in self.mailbox.arrived}
        result["delays"] = [arrived[e] - t for e, t in quiet.invites.items() if e in arrived]
        result["missing"] = len(quiet.invites) - len(arrived)
        result["missing_waited"] = min((waited_until - t for e, t in quiet.invites.items() if e not in arrived),
                                       default=0.0)  # fmt: skip
        result["invites"] = len(quiet.invites)
        result["invite_errors"] = quiet.invite_errors
        result["latencies"], result["errors"] = quiet.between(window_start, window_end)
        # The window in slices: does the noise hurt all along, or while a burst allowance lasts?
        count = max(1, min(6, round(args.seconds / 5)))
        edges = [window_start + n * (window_end - window_start) / count for n in range(count + 1)]
        result["slices"] = (args.seconds / count, [pct(quiet.between(a, b)[0], 0.99) for a, b in pairwise(edges)])
        result["seconds"] = window_end - window_start
        result["delivered"] = self.receiver.hits - hits_start
        result["pending_end"] = self.pending_deliveries()
        self.stop()
        if noisy:
            result["dropped"] = self.purge_backlog()
        return result


# --- report ----------------------------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def email_cell(r: dict[str, Any]) -> str:
    delays = r["delays"]
    if not delays:
        return f"{r['missing']} of {r['invites']} never arrived"
    text = f"p50 {statistics.median(delays):.2f} s, p99 {pct(delays, 0.99) / 1000:.2f} s, max {max(delays):.2f} s"
    if r["missing"]:
        text += f"; **{r['missing']} of {r['invites']} not there after {r['missing_waited']:.0f} s**"
    return text


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    base = results[0]
    base_p99 = pct(base["latencies"], 0.99)
    base_p50 = pct(base["latencies"], 0.5)
    command = " ".join(["bench/noisy_neighbour.py", *sys.argv[1:]])
    ahead = f", the noisy load started {args.noisy_head_start:g} s ahead" if args.noisy_head_start else ""
    print(f"\n`.venv/bin/python {command}`\n")
    print(f"{QUIET_ORGS} quiet organizations x {args.quiet_rate:g} req/s of `GET .../leads?limit=20` (open loop, up to "
          f"{args.quiet_threads} in flight) + 1 invitation each every {args.invite_every:g} s; the noisy one: "
          f"{args.quiet_rate * args.noisy_factor:g} req/s of `GET .../leads?limit=200` with an API key "
          f"({args.noisy_leads} leads, {args.noisy_threads} threads) and a backlog of {args.backlog} webhook "
          f"deliveries ({args.endpoints} endpoints answering after {args.receiver_delay:g} s). "
          f"{args.seconds:g} s measured per phase{ahead}.\n")  # fmt: skip
    print("| phase | guardrails | quiet requests (non-2xx) | quiet p50 | quiet p99 | p99 vs quiet | quiet invitation "
          "email delay | noisy organization |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        p50, p99 = pct(r["latencies"], 0.5), pct(r["latencies"], 0.99)
        errors = sum(r["errors"].values()) + sum(r["invite_errors"].values())
        noisy = "-"
        if r["noisy"]:
            statuses = r["noisy_statuses"]
            sent = sum(statuses.values())
            codes = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
            noisy = (f"{sent / (args.noisy_head_start + WARM + args.seconds):.0f} req/s sent ({codes}), "
                     f"p50 {ms(pct(r['noisy_latencies'], 0.5))}; backlog {r['pending_start']} → {r['pending_end']} "
                     f"({r['delivered']} delivered)")  # fmt: skip
        print(f"| {r['name']} | {r['knobs']} | {len(r['latencies'])} ({errors}) | {ms(p50)} ({p50 / base_p50:.2f}x) | "
              f"{ms(p99)} | {p99 / base_p99:.2f}x | {email_cell(r)} | {noisy} |")  # fmt: skip
    print()
    for r in results:
        p99 = pct(r["latencies"], 0.99)
        line = (f"- **{r['name']}** (guardrails {r['knobs']}; service up in {r['start_s']:.0f} s): quiet p99 "
                f"{ms(p99)}, {p99 / base_p99:.2f}x the quiet phase; quiet non-2xx: "
                f"{dict(r['errors']) or 0} on GETs, {dict(r['invite_errors']) or 0} on {r['invites']} invitations; "
                f"email delay {email_cell(r)}; p99 by {r['slices'][0]:.0f} s slice: "
                f"{', '.join(ms(v) for v in r['slices'][1])}")  # fmt: skip
        if r["noisy"]:
            posts, took, _ = r["backlog_build"]
            line += (f"; backlog built by {posts} `POST /leads` in {took:.1f} s, {r['delivered']} delivered during "
                     f"the phase, {r['dropped']} dropped after")  # fmt: skip
        print(line + ".")
    last = results[-1]
    p99_ratio = pct(last["latencies"], 0.99) / base_p99
    email_max = max(last["delays"], default=float("inf")) if not last["missing"] else float("inf")
    met = p99_ratio < 1.10 and email_max < 5 and not last["errors"] and not last["invite_errors"]
    print(f"\nTarget (guardrails on: p99 < 1.10x quiet, email delay < 5 s, no quiet non-2xx): "
          f"{'met' if met else 'not met'} (p99 {p99_ratio:.2f}x, email max "
          f"{'∞' if math.isinf(email_max) else f'{email_max:.2f} s'}).")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per phase (default 30)")
    parser.add_argument("--quiet-rate", type=float, default=2, help="requests/s per quiet organization (2)")
    parser.add_argument("--noisy-factor", type=float, default=100, help="noisy rate / quiet rate (100)")
    parser.add_argument("--backlog", type=int, default=3000, help="webhook deliveries queued before a noisy phase")
    parser.add_argument("--endpoints", type=int, default=10, help="the noisy organization's webhook endpoints (10)")
    parser.add_argument("--receiver-delay", type=float, default=1.5, help="seconds the receiver takes per webhook")
    parser.add_argument("--invite-every", type=float, default=10, help="seconds between a quiet org's invitations")
    parser.add_argument("--email-wait", type=float, default=30, help="seconds to wait for late emails after a phase")
    parser.add_argument("--quiet-threads", type=int, default=64, help="quiet GETs in flight at most (their pool)")
    parser.add_argument("--noisy-threads", type=int, default=32, help="noisy GETs in flight at most (its threads)")
    parser.add_argument("--noisy-leads", type=int, default=10_000, help="leads in the noisy organization")
    parser.add_argument("--noisy-head-start", type=float, default=0, help="seconds of noisy load before the quiet")
    parser.add_argument("--on", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the guardrails-on phases (repeatable), e.g. to find the floor: "
                             "RATELIMIT_CREDENTIAL_PER_MINUTE_FREE=1 (the noisy key only gets 429s)")  # fmt: skip
    parser.add_argument("--skip-off", action="store_true", help="leave out the phase without guardrails")
    args = parser.parse_args()
    GUARDRAILS["on"].update(dict(item.split("=", 1) for item in args.on))
    drop_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-noisy-"))
    log(f"logs in {tmp}")
    bench = Bench(args, tmp)
    results = []
    started = time.perf_counter()
    try:
        for index, (name, knobs, noisy) in enumerate(PHASES):
            if args.skip_off and knobs == "off":
                continue
            r = bench.phase(name, knobs, noisy, index)
            results.append(r)
            log(f"{name}: quiet p50 {ms(pct(r['latencies'], .5))}, p99 {ms(pct(r['latencies'], .99))}, "
                f"non-2xx {sum(r['errors'].values())}, emails {email_cell(r)}"
                + (f", noisy {r['noisy_statuses']}" if noisy else ""))  # fmt: skip
        log(f"total {time.perf_counter() - started:.0f} s")
        report(args, results)
    except KeyboardInterrupt:
        log("interrupted: stopping what was started")
    finally:
        bench.close()
        drop_database()


if __name__ == "__main__":
    main()
