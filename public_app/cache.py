"""Read-through cache for lookups on the request path (organizations, memberships, tokens), safe against races.

Each key has a generation counter next to it. An entry is stored as `(generation, value)` and is only used while
that generation is still current; invalidation increments the counter. A reader that loaded a row just before a
concurrent change committed stores it under the old generation, so the stale value is never served: this is what
makes "access ends with the response" hold with a cache in front of memberships. A hit costs one round trip
(`get_many` of the entry and its counter).
"""

import logging
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


def _bump(keys: list[str]) -> None:
    for key in keys:
        gen_key = _gen_key(key)
        try:
            try:
                cache.incr(gen_key)
            except ValueError:
                cache.add(gen_key, time.time_ns(), None)
        except Exception:
            logger.error("cache invalidation failed for %s", key, exc_info=True)


def invalidate(keys: Iterable[str]) -> None:
    """Invalidate now (readers inside this transaction) and again after commit (readers that raced the commit)."""
    key_list = list(keys)
    _bump(key_list)
    transaction.on_commit(lambda: _bump(key_list))
