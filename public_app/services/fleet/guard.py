"""What every ops action goes through: a record of who ran what and what came of it (public_app.OpsRecord, listed
by `orgs history` and in /admin/), and the fleet lock that keeps two changing commands from running at once (two
`orgs migrate` runs used to fight over the same schemas: hundreds of "already exists" errors, both failed)."""

import getpass
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from public_app.leases import lease_acquire, lease_release, new_holder
from public_app.models import Lease, OpsOutcome, OpsRecord
from public_app.tenancy import public_context

FLEET_LOCK = "orgs-fleet"
# A holder renews the lock every LOCK_RENEW; one that died (kill -9, a lost machine) loses it LOCK_TTL later.
LOCK_TTL = timedelta(seconds=90)
LOCK_RENEW = 20.0


def operator() -> str:
    """Who is running this process: ORGS_OPERATOR when set (a wrapper that knows the person behind a shared
    account), else the user sudo was run by, else the OS user, at this host."""
    who = os.environ.get("ORGS_OPERATOR") or os.environ.get("SUDO_USER")
    if not who:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = f"uid {os.getuid()}"
    return f"{who}@{socket.gethostname()}"


def ops_record_start(*, action: str, actor: str, arguments: dict[str, Any], slugs: list[str]) -> OpsRecord:
    with public_context():
        return OpsRecord.objects.create(action=action, actor=actor[:200], arguments=arguments, slugs=slugs)


def ops_record_finish(*, record: OpsRecord, outcome: OpsOutcome, result: dict[str, Any]) -> None:
    record.outcome, record.result, record.finished_at = outcome, result, timezone.now()
    with public_context():
        record.save(update_fields=["outcome", "result", "finished_at"])


def ops_history(*, slug: str | None = None, limit: int = 50) -> list[OpsRecord]:
    records = OpsRecord.objects.order_by("-started_at", "-id")
    if slug:
        records = records.filter(slugs__contains=[slug])
    return list(records[:limit])


class FleetLocked(Exception):
    def __init__(self, holder: str, expires_at: Any) -> None:
        self.holder, self.expires_at = holder, expires_at
        super().__init__(
            f"another fleet command holds the lock: {holder} (if that process is gone, the lock lapses at "
            f"{expires_at:%Y-%m-%d %H:%M:%S} UTC)"
        )


@contextmanager
def fleet_lock(description: str) -> Iterator[None]:
    """Hold the fleet lock for the block, renewed in the background; FleetLocked names the current holder.
    `description` (who, what) is what a second command prints."""
    holder = f"{description} [{new_holder()}] since {timezone.now():%H:%M:%S}"[:200]
    if not lease_acquire(FLEET_LOCK, holder, LOCK_TTL):
        current = Lease.objects.filter(name=FLEET_LOCK).first()
        if current is None:  # released between the two reads: try once more
            if not lease_acquire(FLEET_LOCK, holder, LOCK_TTL):
                raise FleetLocked("(unknown)", timezone.now() + LOCK_TTL)
        else:
            raise FleetLocked(current.holder, current.expires_at)
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(LOCK_RENEW):
                lease_acquire(FLEET_LOCK, holder, LOCK_TTL)
        finally:
            connection.close()  # this thread's own connection

    renewer = threading.Thread(target=renew, name="fleet-lock-renewer", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        lease_release(FLEET_LOCK, holder)
