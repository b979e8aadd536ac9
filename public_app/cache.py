"""Read-through cache with tombstones, for lookups on the request path (organizations, memberships, tokens).

Invalidation writes a short-lived tombstone instead of deleting the key, and fills use `add` (SET NX). A reader that
loaded a row just before a concurrent change committed cannot put the stale value back: its `add` finds the
tombstone and does nothing. While the tombstone lives, readers go to the database. This is what makes "access ends
with the response" hold with a cache in front of memberships.
"""

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

_TOMBSTONE = "__tombstone__"
_NONE = "__none__"


def cached(key: str, loader: Callable[[], Any], timeout: int | None = None) -> Any:
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("cache read failed for %s; using the database", key, exc_info=True)
        return loader()
    if value == _TOMBSTONE:
        return loader()
    if value is not None:
        return None if value == _NONE else value
    value = loader()
    try:
        cache.add(key, _NONE if value is None else value, timeout or settings.LOOKUP_CACHE_TIMEOUT)
    except Exception:
        logger.warning("cache write failed for %s", key, exc_info=True)
    return value


def _write_tombstones(keys: list[str]) -> None:
    try:
        cache.set_many(dict.fromkeys(keys, _TOMBSTONE), settings.LOOKUP_CACHE_TOMBSTONE_SECONDS)
    except Exception:
        logger.error("cache invalidation failed for %s", keys, exc_info=True)


def invalidate(keys: Iterable[str]) -> None:
    """Invalidate now (readers inside this transaction) and again after commit (readers that raced the commit)."""
    key_list = list(keys)
    _write_tombstones(key_list)
    transaction.on_commit(lambda: _write_tombstones(key_list))
