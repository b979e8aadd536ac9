"""Guessing defences for credentials (passwords, invitation and verification links).

Every failed guess is counted in three scopes: the account (from all addresses: one account tried from many IPs),
the client address (against all accounts: password spraying) and the pair. Each scope allows a few failures
freely, then makes the next attempt wait, doubling with every further failure (2 s, 4 s, ... up to
BRUTEFORCE_MAX_LOCK_SECONDS): 429 `rate_limited` with Retry-After. A success clears the account's and the pair's
counts (not the address's: a sprayer who knows one password is still a sprayer). Counts fade after
BRUTEFORCE_WINDOW_SECONDS without failures.
"""

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

from public_app import errors

logger = logging.getLogger(__name__)


def _fail_open(function: Callable[..., None]) -> Callable[..., None]:
    """With the cache unreachable, sign-ins keep working unguarded (logged) rather than all failing: an outage
    of seconds to minutes gives a guesser little, an outage that locks everybody out costs everyone."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except errors.ApplicationError:
            raise
        except Exception:
            logger.warning("brute-force guard unavailable (cache down?); %s not applied", function.__name__,
                           exc_info=True)  # fmt: skip

    return wrapper


def _now() -> float:
    return time.time()


def _scopes(kind: str, account: str | None, ip: str | None) -> list[tuple[str, int]]:
    scopes = []
    if account:
        scopes.append((f"bf:{kind}:acct:{account}", settings.BRUTEFORCE_FREE_PER_ACCOUNT))
    if ip:
        scopes.append((f"bf:{kind}:ip:{ip}", settings.BRUTEFORCE_FREE_PER_IP))
    if account and ip:
        scopes.append((f"bf:{kind}:pair:{ip}:{account}", settings.BRUTEFORCE_FREE_PER_PAIR))
    return scopes


def _wait(n: int, at: float | None, free: int, now: float) -> int:
    """Seconds the next attempt must wait after `n` failures, the last one at `at`."""
    if n < free or at is None:
        return 0
    lock = min(2 ** (n - free + 1), settings.BRUTEFORCE_MAX_LOCK_SECONDS)
    return max(0, math.ceil(at + lock - now))


@_fail_open
def guard_check(kind: str, *, account: str | None = None, ip: str | None = None) -> None:
    """Refuse (429) while any scope of this attempt is locked; otherwise reserve the attempt.

    The reservation counts the attempt as a failure before the credential is checked (an atomic increment), so
    concurrent guesses cannot all pass a check that only saw the failures already recorded. `guard_succeeded`
    gives it back; `guard_failed` keeps it."""
    if not settings.RATELIMIT_ENABLED:
        return
    scopes = _scopes(kind, account, ip)
    now = _now()
    found = cache.get_many([k for key, _ in scopes for k in (f"{key}:n", f"{key}:at")])
    wait = max((_wait(found.get(f"{key}:n") or 0, found.get(f"{key}:at"), free, now) for key, free in scopes),
               default=0)  # fmt: skip
    if wait > 0:
        raise errors.RateLimited("Too many failed attempts; wait before trying again.", retry_after=wait)
    reserved = []
    # The account and the pair are reserved; the address is not: many people behind one address (an office)
    # signing in at once must not count as failures in flight. A sprayer's overshoot is bounded by concurrency.
    for key, free in [(k, f) for k, f in scopes if ":ip:" not in k]:
        cache.add(f"{key}:n", 0, settings.BRUTEFORCE_WINDOW_SECONDS)
        reserved.append((key, free, cache.incr(f"{key}:n")))
    ats = cache.get_many([f"{key}:at" for key, _, _ in reserved])
    # Beyond the free allowance, attempts in flight ahead of this one count as failures that happened just now
    # (there is no failure time yet, or a newer count than this request saw), and only one attempt per scope may
    # be in flight at a time (a marker taken with `add`, dropped when the attempt resolves).
    wait, taken = 0, []
    for key, free, n in reserved:
        ahead = n - 1
        if ahead < free:
            continue
        at = ats.get(f"{key}:at")
        if at is None or ahead > (found.get(f"{key}:n") or 0):
            at = now
        wait = max(wait, _wait(ahead, at, free, now))
        if wait == 0:
            if cache.add(f"{key}:inflight", 1, 30):
                taken.append(key)
            else:
                wait = 1
    if wait > 0:
        for key, _, _ in reserved:
            cache.decr(f"{key}:n")
        cache.delete_many([f"{key}:inflight" for key in taken])
        raise errors.RateLimited("Too many failed attempts; wait before trying again.", retry_after=wait)


@_fail_open
def guard_failed(kind: str, *, account: str | None = None, ip: str | None = None) -> None:
    """The reserved attempt failed: it stays counted (the address's count goes up now), and the back-off runs from
    now."""
    if not settings.RATELIMIT_ENABLED:
        return
    now = _now()
    scopes = _scopes(kind, account, ip)
    cache.delete_many([f"{key}:inflight" for key, _ in scopes])
    for key, _ in scopes:
        if ":ip:" in key:
            cache.add(f"{key}:n", 0, settings.BRUTEFORCE_WINDOW_SECONDS)
            cache.incr(f"{key}:n")
    cache.set_many({f"{key}:at": now for key, _ in scopes}, settings.BRUTEFORCE_WINDOW_SECONDS)


@_fail_open
def guard_succeeded(kind: str, *, account: str | None = None, ip: str | None = None) -> None:
    """The reserved attempt succeeded: the account's and the pair's counts clear; the address's stays (a sprayer
    who knows one password is still a sprayer)."""
    if not settings.RATELIMIT_ENABLED:
        return
    cache.delete_many(
        [
            k
            for key, _ in _scopes(kind, account, ip)
            if ":ip:" not in key
            for k in (f"{key}:n", f"{key}:at", f"{key}:inflight")
        ]
    )
