"""The hand-off from a committed write to a job: the only way code asks for background work.

`enqueue("send_invitation_email", invitation.id, version, organization=org)` writes an outbox row in the caller's
transaction, so the job exists exactly when the write does. After commit the row is relayed to the broker at once;
if the broker is unreachable the write still succeeds and the relay loop (`manage.py scheduler`, every
OUTBOX_RELAY_INTERVAL_SECONDS) sends it once the broker is back. The row stays until a worker has finished the job
(`jobs.middleware.OutboxMiddleware` deletes it) and is sent again if its message went missing (a broker restarted
empty, a worker killed before Dramatiq's own redelivery): at least once, with actors idempotent (each re-checks the
state it acts on), so a duplicate costs a no-op.

Callers name actors by string: nothing below the jobs layer imports an actor, so services never import jobs.

Fair share: the jobs of the priority lane (PRIORITY_QUEUES: provisioning, emails) always go straight to the broker,
and have workers of their own (`manage.py serve`). Every other job of an organization (webhook deliveries, Leadsforce
syncs, billing) is sent only while that organization has fewer than JOB_ORG_CONCURRENCY of them at the broker
(sent, not finished); the rest are held here, durable like any row, and released oldest first as the organization's
earlier jobs finish. The broker's queues therefore never hold more than that many jobs of one organization: its
50,000 pending deliveries are 4 messages ahead of another organization's one, and at most 4 of its jobs run at once.
"""

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from public_app.models import OutboxMessage
from public_app.tenancy import public_context

if TYPE_CHECKING:
    from public_app.models import Organization

logger = logging.getLogger(__name__)

# Queues that are never held back and have workers of their own (the priority lane).
PRIORITY_QUEUES = ("provisioning", "emails")
_FAR_FUTURE = timedelta(days=3650)

_pending = threading.local()  # ids written by this thread's open transaction, relayed on its commit
_breaker_until = 0.0  # monotonic time before which requests leave relaying to the loop (the broker just failed)


def enqueue(
    actor_name: str,
    *args: Any,
    organization: "Organization | None" = None,
    organization_id: int | None = None,
    delay: timedelta | None = None,
    unique: bool = False,
) -> OutboxMessage | None:
    """Ask for `actor_name(*args)` once the current transaction commits (at once outside one).

    `organization` names whose work it is (kept on the row for ops and fair-share accounting; the actor still
    loads it by id). `unique` skips the request when the same job is already waiting and not yet started (periodic
    jobs during an outage; changes that ride along with a queued sync; once it has started, a new request queues
    the trailing run that sees them). Returns the row, or None when skipped."""
    _broker_actor(actor_name)  # fail fast on a misspelt name, in the caller's test, not in a worker
    org_id = organization.id if organization is not None else organization_id
    now = timezone.now()
    with public_context():  # tenant work enqueues too; its role may not write public rows
        waiting = OutboxMessage.objects.filter(actor_name=actor_name, args=list(args), started_at__isnull=True)
        if unique and waiting.exists():
            return None
        row = OutboxMessage.objects.create(
            message_id=uuid.uuid4(), actor_name=actor_name, args=list(args), organization_id=org_id,
            eta=now + delay if delay else None, created_at=now, redeliver_at=now,
        )  # fmt: skip
    ids = getattr(_pending, "ids", None)
    if ids is None:
        ids = _pending.ids = []
    ids.append(row.id)
    transaction.on_commit(_relay_pending)  # several per transaction: the first relays them all, the rest no-op
    return row


def _relay_pending() -> None:
    """After commit, in the request or job that wrote the rows. Never raises: the write is committed and must be
    reported as such; whatever is not sent here is the relay loop's."""
    ids = getattr(_pending, "ids", None) or []
    _pending.ids = []
    if not ids or time.monotonic() < _breaker_until:
        return
    try:
        relay(ids=ids)
    except Exception:  # the database itself failed after our commit: the rows are there, the loop sends them
        logger.warning("outbox: relay after commit failed; the relay loop will send %d job(s)", len(ids),
                       exc_info=True)  # fmt: skip


def relay(*, ids: list[int] | None = None, limit: int = 500) -> int:
    """Send due rows (these `ids`, or the oldest due ones) to the broker; returns how many were sent. Rows another
    relay holds are skipped (FOR UPDATE SKIP LOCKED), so any number of relays may run. Stops at the first broker
    failure (the rest wait for the next pass) and opens the breaker."""
    global _breaker_until
    from dramatiq import Message

    sent = 0
    now = timezone.now()
    in_flight: dict[int, int] = {}
    with public_context(), transaction.atomic():
        rows = OutboxMessage.objects.select_for_update(skip_locked=True).filter(redeliver_at__lte=now)
        if ids is not None:
            rows = rows.filter(id__in=ids)
        for row in rows.order_by("redeliver_at", "id")[:limit]:
            try:
                actor = _broker_actor(row.actor_name)
            except Exception as exc:
                _record_error(row, now, f"unknown actor: {exc}", retry_in=timedelta(hours=1))
                continue
            org = row.organization_id
            if row.relay_count == 0 and org is not None and _fair_shared(org, actor.queue_name):
                if org not in in_flight:
                    in_flight[org] = _in_flight(org)
                if in_flight[org] >= settings.JOB_ORG_CONCURRENCY:
                    row.held, row.redeliver_at = True, now + _FAR_FUTURE
                    row.save(update_fields=["held", "redeliver_at"])
                    continue
                in_flight[org] += 1
            delay_ms = max(0, int((row.eta - now).total_seconds() * 1000)) if row.eta else 0
            message: Message[Any] = Message(queue_name=actor.queue_name, actor_name=row.actor_name,
                                            args=tuple(row.args), kwargs={}, options={},
                                            message_id=str(row.message_id))  # fmt: skip
            try:
                actor.broker.enqueue(message, delay=delay_ms or None)
            except Exception as exc:
                _breaker_until = time.monotonic() + settings.OUTBOX_BREAKER_SECONDS
                logger.warning("outbox: broker unavailable (%s: %s); %s waits for the relay loop",
                               type(exc).__name__, exc, row.actor_name)  # fmt: skip
                _record_error(row, now, f"{type(exc).__name__}: {exc}", retry_in=timedelta(0))
                break
            row.relayed_at = now
            row.relay_count += 1
            row.last_error = ""
            row.redeliver_at = now + timedelta(milliseconds=delay_ms, seconds=settings.OUTBOX_REDELIVER_SECONDS)
            row.save(update_fields=["relayed_at", "relay_count", "last_error", "redeliver_at"])
            sent += 1
    if sent:
        _breaker_until = 0.0
    return sent


def _fair_shared(organization_id: int | None, queue_name: str) -> bool:
    return organization_id is not None and settings.JOB_ORG_CONCURRENCY > 0 and queue_name not in PRIORITY_QUEUES


def _shared_lane_actors() -> list[str]:
    import dramatiq

    broker = dramatiq.get_broker()
    return [name for name in broker.get_declared_actors()
            if broker.get_actor(name).queue_name not in PRIORITY_QUEUES]  # fmt: skip


def _in_flight(organization_id: int) -> int:
    """The organization's shared-lane jobs at the broker (sent, not finished), counted under a lock on the
    organization's share, so that two relays never both send its last free place. Inside the relay's transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended('outbox-org', %s))", [organization_id])
    return OutboxMessage.objects.filter(organization_id=organization_id, held=False, relay_count__gt=0,
                                        actor_name__in=_shared_lane_actors()).count()  # fmt: skip


def release_held(organization_id: int | None = None) -> list[int]:
    """Make held jobs due again, oldest first, as far as their organization's share has room (the organization
    whose job just finished, or every one: the relay loop's pass, for a worker that died before doing it; with
    the cap lifted, everything). Returns their ids; the caller relays them."""
    cap = settings.JOB_ORG_CONCURRENCY
    released: list[int] = []
    with public_context(), transaction.atomic():
        held = OutboxMessage.objects.filter(held=True)
        orgs: list[int] = [organization_id] if organization_id is not None else [
            org for org in held.values_list("organization_id", flat=True).distinct().order_by() if org is not None]
        for org in orgs:
            room = cap - _in_flight(org) if cap > 0 else 1_000_000
            if room <= 0:
                continue
            rows = held.filter(organization_id=org).order_by("id").select_for_update(skip_locked=True)
            ids = list(rows.values_list("id", flat=True)[:room])
            OutboxMessage.objects.filter(id__in=ids).update(held=False, redeliver_at=timezone.now())
            released += ids
    return released


def relay_all(*, limit: int = 500) -> int:
    """The relay loop's pass: everything due, in batches, until nothing is left or the broker fails."""
    total = 0
    release_held()
    while True:
        sent = relay(limit=limit)
        total += sent
        if sent < limit:
            return total


def _record_error(row: OutboxMessage, now: datetime, error: str, retry_in: timedelta) -> None:
    row.last_error = error[:2000]
    row.redeliver_at = now + retry_in
    row.save(update_fields=["last_error", "redeliver_at"])


def _broker_actor(actor_name: str) -> Any:
    import dramatiq

    return dramatiq.get_broker().get_actor(actor_name)


# What follows is the same message's life seen from the worker (jobs.middleware.OutboxMiddleware calls these).


def job_started(message_id: str, time_limit_ms: int) -> None:
    """A worker took the job: no redelivery while it may still be running."""
    now = timezone.now()
    grace = timedelta(milliseconds=time_limit_ms, seconds=settings.OUTBOX_REDELIVER_SECONDS)
    _update(message_id, started_at=now, redeliver_at=now + grace)


def job_retry_scheduled(message_id: str, delay_ms: int) -> None:
    """Dramatiq put the job back with a back-off: redeliver only if that retry goes missing too."""
    _update(message_id, redeliver_at=timezone.now() + timedelta(milliseconds=delay_ms,
                                                                seconds=settings.OUTBOX_REDELIVER_SECONDS))  # fmt: skip


def job_finished(message_id: str) -> None:
    """Done, or given up on (retries exhausted): nothing left to deliver. A shared-lane job makes room for its
    organization's next held one, sent at once."""
    try:
        with public_context():
            row = OutboxMessage.objects.filter(message_id=message_id).values("organization_id", "actor_name").first()
            OutboxMessage.objects.filter(message_id=message_id).delete()
        fair = row is not None and row["organization_id"] is not None and settings.JOB_ORG_CONCURRENCY > 0
        if fair and row["actor_name"] in _shared_lane_actors():  # type: ignore[index]
            released = release_held(row["organization_id"])  # type: ignore[index]
            if released:
                relay(ids=released)
    except DatabaseError:
        # The job's effect is committed; without this delete it runs once more later, a no-op by design.
        logger.warning("outbox: could not mark %s finished", message_id, exc_info=True)
        connection.close()


def _update(message_id: str, **fields: Any) -> None:
    try:
        with public_context():
            OutboxMessage.objects.filter(message_id=message_id).update(**fields)
    except DatabaseError:
        logger.warning("outbox: could not update %s", message_id, exc_info=True)
        connection.close()


def outbox_backlog() -> dict[str, Any]:
    """For /readyz and ops: how many jobs wait for the broker, and since when."""
    now = timezone.now()
    with public_context():
        waiting = OutboxMessage.objects.filter(relay_count=0, redeliver_at__lte=now)
        oldest = waiting.order_by("created_at").values_list("created_at", flat=True).first()
        return {"waiting": waiting.count(), "oldest_seconds": (now - oldest).total_seconds() if oldest else 0}
