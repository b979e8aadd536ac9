"""Guessing defences for credentials (passwords, invitation and verification links).

Every failed guess is counted in three scopes: the account (from all addresses: one account tried from many IPs),
the client address (against all accounts: password spraying) and the pair. Each scope allows a few failures
freely, then makes the next attempt wait, doubling with every further failure (2 s, 4 s, ... up to
BRUTEFORCE_MAX_LOCK_SECONDS): 429 `rate_limited` with Retry-After. A success clears the account's and the pair's
counts (not the address's: a sprayer who knows one password is still a sprayer). Counts fade after
BRUTEFORCE_WINDOW_SECONDS without failures.
"""

import math
import time

from django.conf import settings
from django.core.cache import cache

from public_app import errors


def _scopes(kind: str, account: str | None, ip: str | None) -> list[tuple[str, int]]:
    scopes = []
    if account:
        scopes.append((f"bf:{kind}:acct:{account}", settings.BRUTEFORCE_FREE_PER_ACCOUNT))
    if ip:
        scopes.append((f"bf:{kind}:ip:{ip}", settings.BRUTEFORCE_FREE_PER_IP))
    if account and ip:
        scopes.append((f"bf:{kind}:pair:{ip}:{account}", settings.BRUTEFORCE_FREE_PER_PAIR))
    return scopes


def _wait(state: dict | None, free: int, now: float) -> int:
    if not state or state["n"] < free:
        return 0
    lock = min(2 ** (state["n"] - free + 1), settings.BRUTEFORCE_MAX_LOCK_SECONDS)
    return max(0, math.ceil(state["at"] + lock - now))


def guard_check(kind: str, *, account: str | None = None, ip: str | None = None) -> None:
    """Refuse (429) while any scope of this attempt is locked."""
    if not settings.RATELIMIT_ENABLED:
        return
    scopes = _scopes(kind, account, ip)
    states = cache.get_many([key for key, _ in scopes])
    now = time.time()
    wait = max((_wait(states.get(key), free, now) for key, free in scopes), default=0)
    if wait > 0:
        raise errors.RateLimited("Too many failed attempts; wait before trying again.", retry_after=wait)


def guard_failed(kind: str, *, account: str | None = None, ip: str | None = None) -> None:
    if not settings.RATELIMIT_ENABLED:
        return
    now = time.time()
    scopes = _scopes(kind, account, ip)
    states = cache.get_many([key for key, _ in scopes])
    cache.set_many(
        {key: {"n": (states.get(key) or {"n": 0})["n"] + 1, "at": now} for key, _ in scopes},
        settings.BRUTEFORCE_WINDOW_SECONDS,
    )


def guard_succeeded(kind: str, *, account: str | None = None, ip: str | None = None) -> None:
    if not settings.RATELIMIT_ENABLED:
        return
    cache.delete_many([key for key, _ in _scopes(kind, account, ip) if ":ip:" not in key])
