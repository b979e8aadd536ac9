"""`manage.py scheduler`: enqueue the periodic maintenance jobs every SCHEDULER_INTERVAL_SECONDS.

Several schedulers may run (one per host, say): a lease row (public_app.leases) elects one leader, which renews it
every third of SCHEDULER_LEASE_SECONDS; the others try to take it every second and do so once it has expired (the
leader stopped, crashed or lost the database). Stopping cleanly releases it at once. The jobs are idempotent, so a
double tick during a hand-over costs nothing.
"""

import contextlib
import signal
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from public_app.leases import lease_acquire, lease_release, new_holder

LEASE_NAME = "scheduler-leader"


class Command(BaseCommand):
    help = "Enqueue periodic maintenance jobs (purge deleted organizations, expire invitations, ...) forever."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Enqueue every periodic job once and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        from jobs.maintenance import PERIODIC

        if options["once"]:
            for actor in PERIODIC:
                actor.send()
            self.stdout.write(f"enqueued {len(PERIODIC)} jobs")
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
        next_tick = next_renewal = 0.0
        while not stopping:
            now = time.monotonic()
            if not leader or now >= next_renewal:
                try:
                    held = lease_acquire(LEASE_NAME, holder, ttl)
                except DatabaseError as exc:
                    held = False
                    self.stderr.write(f"scheduler: database unavailable ({type(exc).__name__}: {exc}); not leading")
                    connection.close()
                if held and not leader:
                    self.stdout.write("scheduler: leading")
                elif leader and not held:
                    self.stdout.write("scheduler: lost the lead")
                self.stdout.flush()
                leader = held
                next_renewal = now + settings.SCHEDULER_LEASE_SECONDS / 3
            if leader and now >= next_tick:
                for actor in PERIODIC:
                    actor.send()
                next_tick = now + settings.SCHEDULER_INTERVAL_SECONDS
            time.sleep(1)
        if leader:
            with contextlib.suppress(DatabaseError):  # unreachable database: the lease expires on its own
                lease_release(LEASE_NAME, holder)
        connection.close()
