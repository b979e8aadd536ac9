"""`manage.py scheduler`: the outbox relay, and the periodic maintenance jobs every SCHEDULER_INTERVAL_SECONDS.

Relay: every OUTBOX_RELAY_INTERVAL_SECONDS, the jobs committed writes asked for that are not with the broker yet
(it was down at commit time) or whose message went missing are sent (public_app.outbox). Every scheduler relays;
rows are taken with SKIP LOCKED, so several never send the same row at once.

Periodic jobs: several schedulers may run (one per host, say): a lease row (public_app.leases) elects one leader,
which renews it every third of SCHEDULER_LEASE_SECONDS; the others try to take it every second and do so once it
has expired (the leader stopped, crashed or lost the database). Stopping cleanly releases it at once. The jobs are
idempotent and enqueued `unique`, so a double tick during a hand-over, or ticks during a broker outage, cost nothing.

Nothing stops the loop but a signal: an outage of the database, the broker or the cache is logged once, retried
with back-off, and the loop resumes on its own when the dependency is back.
"""

import contextlib
import logging
import signal
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from public_app.leases import lease_acquire, lease_release, new_holder

LEASE_NAME = "scheduler-leader"
logger = logging.getLogger("scheduler")


def enqueue_periodic() -> int:
    from jobs.maintenance import PERIODIC
    from public_app.outbox import enqueue

    return sum(enqueue(actor.actor_name, unique=True) is not None for actor in PERIODIC)


class _Backoff:
    """Log an outage once (and its end), and wait longer between attempts while it lasts (up to 30 s)."""

    def __init__(self, name: str, out: Any) -> None:
        self.name, self.out = name, out
        self.failures = 0
        self.next_try = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_try

    def ok(self) -> None:
        if self.failures:
            self.out.write(f"scheduler: {self.name} works again after {self.failures} failed attempt(s)")
        self.failures = 0
        self.next_try = 0.0

    def failed(self, now: float, exc: BaseException) -> None:
        if not self.failures:
            self.out.write(f"scheduler: {self.name} failing ({type(exc).__name__}: {exc}); retrying with back-off")
        self.failures += 1
        self.next_try = now + min(30.0, 0.5 * 2 ** min(self.failures, 6))
        if isinstance(exc, DatabaseError):
            connection.close()  # reconnect on the next attempt


class Command(BaseCommand):
    help = "Relay the job outbox and enqueue periodic maintenance jobs (purge, expire invitations, ...) forever."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Enqueue every periodic job once, relay, and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        from public_app.outbox import relay_all

        if options["once"]:
            queued = enqueue_periodic()
            relay_all()
            self.stdout.write(f"enqueued {queued} jobs")
            return
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        holder = new_holder()
        ttl = timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS)
        leader = False
        next_tick = next_renewal = next_relay = 0.0
        lease_backoff, tick_backoff = _Backoff("lease", self.stderr), _Backoff("periodic jobs", self.stderr)
        relay_backoff = _Backoff("outbox relay", self.stderr)
        while not stopping:
            now = time.monotonic()
            if (not leader or now >= next_renewal) and lease_backoff.ready(now):
                try:
                    held = lease_acquire(LEASE_NAME, holder, ttl)
                    lease_backoff.ok()
                except Exception as exc:
                    held = False
                    lease_backoff.failed(now, exc)
                if held and not leader:
                    self.stdout.write("scheduler: leading")
                elif leader and not held:
                    self.stdout.write("scheduler: lost the lead")
                self.stdout.flush()
                leader = held
                next_renewal = now + settings.SCHEDULER_LEASE_SECONDS / 3
            if leader and now >= next_tick and tick_backoff.ready(now):
                try:
                    enqueue_periodic()
                    tick_backoff.ok()
                    next_tick = now + settings.SCHEDULER_INTERVAL_SECONDS
                except Exception as exc:
                    tick_backoff.failed(now, exc)
            if now >= next_relay and relay_backoff.ready(now):
                try:
                    relay_all()
                    relay_backoff.ok()
                except Exception as exc:
                    relay_backoff.failed(now, exc)
                next_relay = now + settings.OUTBOX_RELAY_INTERVAL_SECONDS
            time.sleep(0.2)
        if leader:
            with contextlib.suppress(DatabaseError):  # unreachable database: the lease expires on its own
                lease_release(LEASE_NAME, holder)
        connection.close()
