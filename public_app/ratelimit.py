"""Sliding-window rate limits counted in the cache (two fixed windows, the previous one weighted by overlap).

`ratelimit_check` refuses with 429 + Retry-After when the limit is reached; `ratelimit_record` counts an event.
Keeping them apart lets a service count only what really happened (an invitation sent, not a refused attempt).
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache

from public_app import errors

logger = logging.getLogger(__name__)


def _keys(name: str, window: int, now: float) -> tuple[str, str, float]:
    bucket = int(now // window)
    elapsed = (now % window) / window
    return f"rl:{name}:{window}:{bucket}", f"rl:{name}:{window}:{bucket - 1}", elapsed


def ratelimit_count(name: str, window: int) -> float:
    """Events in the window; 0 while the cache is unreachable (limits fail open, logged: an outage must not refuse
    every sign-up and invitation)."""
    current, previous, elapsed = _keys(name, window, time.time())
    try:
        found = cache.get_many([current, previous])
    except Exception:
        logger.warning("rate limit %s not applied: cache unavailable", name, exc_info=True)
        return 0
    return found.get(current, 0) + found.get(previous, 0) * (1 - elapsed)


def ratelimit_check(name: str, *, limit: int, window: int) -> None:
    if not settings.RATELIMIT_ENABLED:
        return
    if ratelimit_count(name, window) >= limit:
        now = time.time()
        retry_after = max(1, int(window - now % window))
        raise errors.RateLimited(retry_after=retry_after)


def ratelimit_record(name: str, *, window: int) -> None:
    if not settings.RATELIMIT_ENABLED:
        return
    current, _, _ = _keys(name, window, time.time())
    try:
        if not cache.add(current, 1, window * 2 + 60):
            try:
                cache.incr(current)
            except ValueError:
                cache.add(current, 1, window * 2 + 60)
    except Exception:
        logger.warning("rate limit %s not counted: cache unavailable", name, exc_info=True)


def ratelimit_hit(name: str, *, limit: int, window: int) -> None:
    """Check and count in one go (for attempts that count whatever their outcome, like logins)."""
    ratelimit_check(name, limit=limit, window=window)
    ratelimit_record(name, window=window)
