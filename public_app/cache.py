"""Read-through cache for lookups on the request path (organizations, memberships, tokens), safe against races.

Each key has a generation counter next to it. An entry is stored as `(generation, value)` and is only used while
that generation is still current; invalidation increments the counter. A reader that loaded a row just before a
concurrent change committed stores it under the old generation, so the stale value is never served: this is what
makes "access ends with the response" hold with a cache in front of memberships. A hit costs one round trip
(`get_many` of the entries and their counters), however many keys a lookup needs; a process's memo of a lookup
costs one round trip that reads only the counters (see `Memo`).
"""

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

logger = logging.getLogger(__name__)

_NONE = "__none__"


def _gen_key(key: str) -> str:
    return f"{key}:gen"


def cached(key: str, loader: Callable[[], Any], timeout: int | None = None) -> Any:
    return cached_entries([(key, loader)], timeout)[0][0]


def cached_entries(
    specs: Sequence[tuple[str, Callable[[], Any]]], timeout: int | None = None
) -> list[tuple[Any, int | None]]:
    """Each key's value with the generation it is valid under, in one `get_many` for all the entries and their
    counters (plus a load and a store for each miss). The generation is None where the cache could not vouch for
    the value (unreachable, or an invalidation of this process still pending): such a value came from the database
    and must not be remembered."""
    if _unbumped:
        _retry_bumps()
        if _unbumped:  # the cache is still unreachable, or still missing an invalidation: trust only the database
            return [(loader(), None) for _, loader in specs]
    try:
        found = cache.get_many([key for key, _ in specs] + [_gen_key(key) for key, _ in specs])
    except Exception:
        logger.warning("cache read failed for %s; using the database", [key for key, _ in specs], exc_info=True)
        return [(loader(), None) for _, loader in specs]
    return [_entry(key, loader, found, timeout) for key, loader in specs]


def _entry(key: str, loader: Callable[[], Any], found: dict[str, Any], timeout: int | None) -> tuple[Any, int | None]:
    gen_key = _gen_key(key)
    generation = found.get(gen_key)
    try:
        if generation is None:
            # A fresh, unique starting generation, so an entry from before an eviction can never match it.
            cache.add(gen_key, time.time_ns(), None)
            generation = cache.get(gen_key)
    except Exception:
        logger.warning("cache read failed for %s; using the database", key, exc_info=True)
        return loader(), None
    entry = found.get(key)
    if entry is not None and generation is not None and entry[0] == generation:
        return (None if entry[1] == _NONE else entry[1]), generation
    value = loader()
    if generation is not None:
        try:
            cache.set(key, (generation, _NONE if value is None else value), timeout or settings.LOOKUP_CACHE_TIMEOUT)
        except Exception:
            logger.warning("cache write failed for %s", key, exc_info=True)
    return value, generation


# The process's own copies of request-path lookups (memos). A memo holds what a request's authentication read
# (token, account, organization, role) together with the generation of every cache key it came from, and is used
# only after one round trip to the cache confirmed that all those generations are still current: the same rule as
# the shared entries above, so an invalidation takes effect on the very next request in every process, while a
# request costs one round trip instead of one per key. Throttled writes (last-used stamps) ride on that round trip.
@dataclass(frozen=True)
class Memo:
    gen_keys: tuple[str, ...]
    generations: tuple[int, ...]
    value: Any
    expires: float  # time.monotonic(): as long as a shared entry lives, so nothing outlives LOOKUP_CACHE_TIMEOUT


_memos: "OrderedDict[Hashable, Memo]" = OrderedDict()
_memos_lock = threading.Lock()


def memo_get(key: Hashable) -> Memo | None:
    with _memos_lock:
        memo = _memos.get(key)
        if memo is None:
            return None
        if memo.expires <= time.monotonic():
            del _memos[key]
            return None
        _memos.move_to_end(key)
        return memo


def memo_put(key: Hashable, entries: Sequence[tuple[str, int | None]], value: Any) -> None:
    """Remember `value`, read from these (cache key, generation) entries; nothing when one is not vouched for."""
    if not entries or any(generation is None for _, generation in entries):
        return
    memo = Memo(
        gen_keys=tuple(_gen_key(key) for key, _ in entries),
        generations=tuple(generation for _, generation in entries),  # type: ignore[misc]
        value=value,
        expires=time.monotonic() + settings.LOOKUP_CACHE_TIMEOUT,
    )
    with _memos_lock:
        _memos[key] = memo
        _memos.move_to_end(key)
        while len(_memos) > settings.LOOKUP_MEMO_SIZE:
            _memos.popitem(last=False)


def memo_clear() -> None:
    with _memos_lock:
        _memos.clear()
        _throttle_tried.clear()


def memo_confirm(memo: Memo, adds: Sequence[tuple[str, int]] = (), rider: Any = None) -> tuple[bool, list[bool], Any]:
    """One round trip: are all of the memo's generations still current (False too when the cache cannot say:
    unreachable, or an invalidation of this process still pending)? And, for each `(key, timeout)` of `adds`,
    whether this call added it (`cache.add`: the caller that adds a throttle key does the throttled write, whether
    or not the memo was current). An add this process tried less than `timeout` seconds ago is not tried again
    (False): the key is still there, or the write it throttles was just done. A `rider` (public_app.fairshare.Take)
    rides in the same round trip on Redis (`queue`/`parse`), or runs alone elsewhere; its result is the third item
    (None: not run)."""
    if _unbumped:
        _retry_bumps()
        if _unbumped:
            return False, [False] * len(adds), None
    now = time.monotonic()
    due = [(key, timeout) for key, timeout in adds if _throttle_tried.get(key, 0.0) <= now]
    try:
        current, added, ridden = _generations_and_adds(memo.gen_keys, due, rider)
    except Exception:
        logger.warning("cache read failed for %s; using the database", memo.gen_keys, exc_info=True)
        return False, [False] * len(adds), None
    if len(_throttle_tried) > 2 * settings.LOOKUP_MEMO_SIZE + 100:
        _throttle_tried.clear()
    for key, timeout in due:
        _throttle_tried[key] = now + timeout
    tried = dict(zip([key for key, _ in due], added, strict=True))
    return current == memo.generations, [tried.get(key, False) for key, _ in adds], ridden


_throttle_tried: dict[str, float] = {}


def _generations_and_adds(
    keys: Sequence[str], adds: Sequence[tuple[str, int]], rider: Any = None
) -> tuple[tuple[Any, ...], list[bool], Any]:
    backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):  # e.g. the database cache: correct, one query per key
        found = backend.get_many(list(keys))
        added = [bool(backend.add(key, 1, timeout)) for key, timeout in adds]
        return tuple(found.get(key) for key in keys), added, rider.run() if rider is not None else None
    client, serializer = _redis_client(backend._cache), backend._cache._serializer  # type: ignore[attr-defined]
    names = [backend.make_key(key) for key in keys]  # ASCII without spaces: nothing for validate_key to warn of
    if not adds and rider is None:
        return tuple(None if v is None else serializer.loads(v) for v in client.mget(names)), [], None
    pipeline = client.pipeline(transaction=False)
    pipeline.mget(names)
    for key, timeout in adds:
        pipeline.set(backend.make_key(key), serializer.dumps(1), ex=timeout, nx=True)
    if rider is not None:
        rider.queue(pipeline, client, backend)
    values, *results = pipeline.execute(raise_on_error=False)
    ridden = rider.parse(results.pop()) if rider is not None else None  # the rider handles its own error
    for result in [values, *results]:
        if isinstance(result, Exception):
            raise result
    return tuple(None if v is None else serializer.loads(v) for v in values), [bool(r) for r in results], ridden


@functools.lru_cache(maxsize=16)
def _redis_client(backend_client: Any) -> Any:
    # Django builds a new client object on every call (about a tenth of a millisecond); it is thread-safe to share.
    return backend_client.get_client(None, write=True)


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


def adds_and_ride(adds: Sequence[tuple[str, int]], rider: Any = None) -> tuple[list[bool], Any]:
    """`cache_add_or_false` of each `(key, timeout)` and the `rider` (see `memo_confirm`) in one round trip."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if rider is None or not isinstance(backend, RedisCache):
        return [cache_add_or_false(key, timeout) for key, timeout in adds], rider.run() if rider else None
    client, serializer = _redis_client(backend._cache), backend._cache._serializer  # type: ignore[attr-defined]
    pipeline = client.pipeline(transaction=False)
    for key, timeout in adds:
        pipeline.set(backend.make_key(key), serializer.dumps(1), ex=timeout, nx=True)
    rider.queue(pipeline, client, backend)
    try:
        *results, ridden = pipeline.execute(raise_on_error=False)
    except Exception:
        logger.warning("cache unavailable: no last-used stamps, no rate limits", exc_info=True)
        return [False] * len(adds), None
    return [result is True for result in results], rider.parse(ridden)


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


def invalidate_matching(prefixes: Iterable[str]) -> int:
    """Invalidate every cached entry whose key starts with one of `prefixes` (ops: a fix made in SQL, whose rows
    the code never saw change). Redis is scanned for them; another backend is cleared as a whole. Returns how many
    entries were invalidated (-1: cleared)."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):
        backend.clear()
        return -1
    client = _redis_client(backend._cache)
    keys: set[str] = set()
    for prefix in prefixes:
        made = backend.make_key(prefix)
        for name in client.scan_iter(match=made.replace("*", "[*]") + "*", count=1000):
            key = (name.decode() if isinstance(name, bytes) else name)[len(made) - len(prefix):]
            keys.add(key.removesuffix(":gen"))
    _bump(sorted(keys))
    return len(keys)


def _replay_later(keys: list[str]) -> None:
    from public_app.outbox import enqueue

    try:
        enqueue("replay_cache_invalidations", keys)
    except Exception:
        logger.error("could not record cache invalidations for replay: %s", keys, exc_info=True)
