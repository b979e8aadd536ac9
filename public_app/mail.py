"""Outgoing email, at most once per email, even when the worker or its database connection dies mid-send.

`send_once(key, build, on_sent)`: in one transaction, claim the email (a `SentEmail` row, locked) and commit; then
talk to the mail server; then record it as sent (retrying the record through a database hiccup). No transaction is
open while the mail server is talked to, so a lost commit can never make a retry send again. The only window left
is a sender killed between the server's "250 accepted" and the record: its claim expires after EMAIL_CLAIM_SECONDS
and the email goes out again, with the same Message-ID.
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from public_app.models import SentEmail

logger = logging.getLogger(__name__)


class EmailInFlight(Exception):
    """Another sender holds this email's claim: retry later (by then it is sent, or the claim has expired)."""


def message_id(local: str) -> str:
    return f"<{local}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"


def send_once(
    key: str,
    build: Callable[[], EmailMessage | None],
    *,
    msg_id: str | None = None,
    on_sent: Callable[[], None] | None = None,
) -> bool:
    """Send the email `build()` makes (None: nothing to send any more), once for `key`. Returns whether it went
    out now. `on_sent` runs in the transaction that records it (e.g. the invitation's sent version)."""
    msg_id = msg_id or message_id(key.replace(":", "."))
    now = timezone.now()
    with transaction.atomic():
        row, _ = SentEmail.objects.select_for_update().get_or_create(key=key, defaults={"message_id": msg_id})
        if row.sent_at is not None:
            return False
        if row.claimed_until is not None and row.claimed_until > now:
            raise EmailInFlight(key)
        message = build()
        if message is None:
            return False
        row.claimed_until = now + timedelta(seconds=settings.EMAIL_CLAIM_SECONDS)
        row.attempts += 1
        row.save(update_fields=["claimed_until", "attempts"])
    message.extra_headers["Message-ID"] = row.message_id
    try:
        message.send()
    except Exception:
        _release(row.id)  # the server did not take it: the next attempt may send
        raise
    _record(row.id, on_sent)
    return True


def _release(row_id: int) -> None:
    try:
        SentEmail.objects.filter(id=row_id, sent_at__isnull=True).update(claimed_until=None)
    except DatabaseError:
        logger.warning("mail: could not release claim %s; it expires on its own", row_id, exc_info=True)
        connection.close()


def _record(row_id: int, on_sent: Callable[[], None] | None, attempts: int = 20) -> None:
    """The server has the email: record it, through a database restart if need be (a failure here is a duplicate
    later, so it is worth waiting for)."""
    delay = 0.25
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                SentEmail.objects.filter(id=row_id).update(sent_at=timezone.now(), claimed_until=None)
                if on_sent is not None:
                    on_sent()
            return
        except DatabaseError:
            if attempt == attempts - 1:
                logger.error("mail: sent but could not record %s; it may go out again after its claim expires",
                             row_id, exc_info=True)  # fmt: skip
                return
            connection.close()
            close_old_connections()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
