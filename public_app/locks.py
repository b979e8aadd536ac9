"""PostgreSQL advisory locks keyed by name (a stable 64-bit hash of it), transaction-level only: a session-level lock
means nothing behind a transaction pooler (public_app.leases holds locks that outlive a transaction)."""

import hashlib

from django.db import connection


def advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(name: str) -> None:
    """Wait for the lock; it is held until the current transaction ends (so there must be one)."""
    if not connection.in_atomic_block:
        raise RuntimeError("advisory_xact_lock outside a transaction would be released at once")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(name)])


def organization_lock(organization_id: int) -> None:
    """The organization row's lock: membership changes, invitations and key creation serialise on it (a demotion
    and a key created at the same moment see each other). Inside the caller's transaction."""
    from public_app.models import Organization

    Organization.objects.select_for_update().filter(id=organization_id).values_list("id").first()


def user_session_lock(user_id: int, token_id: int | None) -> None:
    """The account row's lock, which a claim (public_app.services.verification) holds while it ends every session
    and key of the account: a credential created in the same moment either exists before the claim (and is ended
    by it) or is refused here because the session it was asked with has ended. Inside the caller's transaction."""
    from public_app import errors
    from public_app.models import AuthToken, User

    User.objects.select_for_update().filter(id=user_id).values_list("id").first()
    if token_id is None:
        return
    live = AuthToken.objects.filter(id=token_id, user_id=user_id, revoked_at__isnull=True, user__is_active=True)
    if not live.exists():
        raise errors.NotAuthenticated()
