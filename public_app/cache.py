"""Read-through cache for lookups on the request path (organizations, memberships, tokens), safe against races.

Each key has a generation counter next to it. An entry is stored as `(generation, value)` and is only used while
that generation is still current; invalidation increments the counter. A reader that loaded a row just before a
concurrent change committed stores it under the old generation, so the stale value is never served: this is what
makes "access ends with the response" hold with a cache in front of memberships. A hit costs one round trip
(`get_many` of the entry and its counter).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

_NONE = "__none__"


def _gen_key(key: str) -> str:
    return f"{key}:gen"


def cached(key: str, loader: Callable[[], Any], timeout: int | None = None) -> Any:
    if _unbumped:
        _retry_bumps()
        if _unbumped:  # the cache is still unreachable, or still missing an invalidation: trust only the database
            return loader()
    gen_key = _gen_key(key)
    try:
        found = cache.get_many([key, gen_key])
        generation = found.get(gen_key)
        if generation is None:
            # A fresh, unique starting generation, so an entry from before an eviction can never match it.
            cache.add(gen_key, time.time_ns(), None)
            generation = cache.get(gen_key)
        entry = found.get(key)
    except Exception:
        logger.warning("cache read failed for %s; using the database", key, exc_info=True)
        return loader()
    if entry is not None and generation is not None and entry[0] == generation:
        return None if entry[1] == _NONE else entry[1]
    value = loader()
    if generation is not None:
        try:
            cache.set(key, (generation, _NONE if value is None else value), timeout or settings.LOOKUP_CACHE_TIMEOUT)
        except Exception:
            logger.warning("cache write failed for %s", key, exc_info=True)
    return value


# Invalidations that could not reach the cache (an outage). Until they are through, this process reads from the
# database only, and the first reader after the outage replays them; a job (enqueued through the outbox) replays them
# too, for the processes that saw nothing of it. Entries stored before the outage are therefore never served stale.
_unbumped: set[str] = set()
_unbumped_lock = threading.Lock()


def _bump_one(key: str) -> None:
    gen_key = _gen_key(key)
    try:
        cache.incr(gen_key)
    except ValueError:
        cache.add(gen_key, time.time_ns(), None)


def _bump(keys: list[str]) -> None:
    failed = []
    for key in keys:
        try:
            _bump_one(key)
        except Exception:
            logger.error("cache invalidation failed for %s; replayed once the cache is back", key, exc_info=True)
            failed.append(key)
    if failed:
        with _unbumped_lock:
            _unbumped.update(failed)


def _retry_bumps() -> None:
    with _unbumped_lock:
        keys = list(_unbumped)
    for key in keys:
        try:
            _bump_one(key)
        except Exception:
            return
        with _unbumped_lock:
            _unbumped.discard(key)


def invalidations_replay(keys: list[str]) -> None:
    """The job's side: bump these keys now (raises while the cache is still down, so the job retries)."""
    for key in keys:
        _bump_one(key)


def cache_add_or_false(key: str, timeout: int) -> bool:
    """`cache.add` for best-effort throttled writes (last-used stamps): with the cache down, skip them."""
    try:
        return bool(cache.add(key, 1, timeout))
    except Exception:
        return False


def cache_add_or_true(key: str, timeout: int) -> bool:
    """`cache.add` for "at most every N seconds" throttles: with the cache down, do the work (more often is safe)."""
    try:
        return bool(cache.add(key, 1, timeout))
    except Exception:
        logger.warning("cache unavailable for %s; not throttling", key, exc_info=True)
        return True


def invalidate(keys: Iterable[str]) -> None:
    """Invalidate now (readers inside this transaction) and again after commit (readers that raced the commit)."""
    key_list = list(keys)
    _bump(key_list)

    def after_commit() -> None:
        _bump(key_list)
        if _unbumped.intersection(key_list):
            _replay_later(key_list)

    transaction.on_commit(after_commit)


def _replay_later(keys: list[str]) -> None:
    from public_app.outbox import enqueue

    try:
        enqueue("replay_cache_invalidations", keys)
    except Exception:
        logger.error("could not record cache invalidations for replay: %s", keys, exc_info=True)
