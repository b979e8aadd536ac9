"""`manage.py scheduler`: enqueue the periodic maintenance jobs every SCHEDULER_INTERVAL_SECONDS.

Several schedulers may run (one per host, say): a PostgreSQL advisory lock held for the process lifetime elects
one leader; the others wait and take over if it dies. The jobs are idempotent, so a double tick costs nothing.
"""

import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from public_app.locks import advisory_key


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
        leader = False
        next_tick = 0.0
        while not stopping:
            if not leader:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key("scheduler-leader")])
                    leader = bool(cursor.fetchone()[0])
                if leader:
                    self.stdout.write("scheduler: leading")
            if leader and time.monotonic() >= next_tick:
                for actor in PERIODIC:
                    actor.send()
                next_tick = time.monotonic() + settings.SCHEDULER_INTERVAL_SECONDS
            time.sleep(1)
        connection.close()
