"""Fair share per organization: token buckets for API requests, and the per-organization usage ops see.

Every authenticated API request takes one token from its credential's bucket (an API key; a user token, per
organization it acts in) and, when it acts inside an organization it belongs to, one from that organization's
bucket. A bucket refills at its limit per minute and holds up to RATELIMIT_BURST_SECONDS of it; limits come from
the organization's plan (public_app.plans) unless ops set an override (`orgs limits`). A request is let through only
when every bucket it draws on has a token, and then takes from all of them: an API key looping on one endpoint
empties its own bucket first and never the organization's quota of its colleagues; an organization's many keys
together are held to its own quota; nobody else's bucket is touched. An outsider (404) never draws on the
organization's bucket, so nobody can exhaust another organization's quota.

On Redis the whole decision is one Lua script, on the server's clock, riding in the same pipeline as the lookup
confirmation of public_app.services.callers: no extra round trip on the hot path. It also counts the request (or
the refusal) in a per-minute hash of usage per organization. With the database cache (`CACHE_URL=db://`) buckets
are read and written through Django's cache API: shared across processes, though two racing requests may both take
a bucket's last token. With the cache unreachable, limits fail open (logged), as the other limits do.

The answer carries the IETF draft's headers (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy` lists the
policies that applied (`"organization";q=1200;w=60`), `RateLimit` the one closest to exhaustion (`r` tokens
left, `t` seconds until it is full again).
"""

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import NoScriptError

logger = logging.getLogger(__name__)

USAGE_WINDOW_MINUTES = 5  # what /metrics and `orgs show` report: the last five minutes
_USAGE_KEEP_SECONDS = 15 * 60


@dataclass(frozen=True)
class Bucket:
    key: str  # "org:12", "ak:5", "ut:9:12"
    policy: str  # the RateLimit-Policy item name: "organization", "api_key", "user_token"
    per_minute: int

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute * settings.RATELIMIT_BURST_SECONDS / 60)

    @property
    def per_ms(self) -> float:
        return self.per_minute / 60_000


@dataclass(frozen=True)
class Decision:
    """What the buckets said: let through or not, and what is left of each (for the headers)."""

    allowed: bool
    buckets: tuple[Bucket, ...]
    remaining: tuple[int, ...]
    full_in_ms: tuple[int, ...]
    retry_after: int  # seconds, when refused

    def headers(self) -> dict[str, str]:
        if not self.buckets:
            return {}
        policy = ", ".join(f'"{b.policy}";q={math.floor(b.capacity)};w={settings.RATELIMIT_BURST_SECONDS}'
                           for b in self.buckets)  # fmt: skip
        # The policy closest to exhaustion (the fewest tokens left for its size).
        i = min(range(len(self.buckets)), key=lambda n: self.remaining[n] / self.buckets[n].capacity)
        reset = max(0, math.ceil(self.full_in_ms[i] / 1000)) if self.allowed else self.retry_after
        return {"RateLimit-Policy": policy,
                "RateLimit": f'"{self.buckets[i].policy}";r={max(0, self.remaining[i])};t={reset}'}  # fmt: skip

    @property
    def refused_by(self) -> Bucket | None:
        if self.allowed:
            return None
        return min(zip(self.remaining, self.buckets, strict=True), key=lambda pair: pair[0])[1]


@dataclass(frozen=True)
class OrgLimits:
    """What the buckets need of an organization (kept in the process's lookup memo, so no unpickling)."""

    id: int
    plan: str
    requests_per_minute: int | None  # ops overrides (None: the plan's)
    credential_requests_per_minute: int | None

    @classmethod
    def of(cls, organization: Any) -> "OrgLimits":
        return cls(organization.id, organization.plan, organization.limit_requests_per_minute,
                   organization.limit_credential_requests_per_minute)  # fmt: skip


def buckets_for(
    *, credential_key: str, credential_policy: str, organization: OrgLimits | None, member: bool
) -> tuple[Bucket, ...]:
    """The buckets a request draws on. `organization` (the one the path names, if any) sets the limits; its own
    bucket only when the caller is a member (`member`): outsiders cannot spend another organization's quota."""
    if not settings.RATELIMIT_ENABLED:
        return ()
    from public_app.plans import plan_get

    plan = plan_get(organization.plan if organization is not None else "free")
    per_credential = plan.credential_requests_per_minute
    if organization is not None and organization.credential_requests_per_minute is not None:
        per_credential = organization.credential_requests_per_minute
    if organization is None or not member:
        return (Bucket(credential_key, credential_policy, per_credential),)
    per_org = organization.requests_per_minute or plan.requests_per_minute
    if credential_policy == "user_token":  # a user token acts in many organizations, each with its own limits
        credential_key = f"{credential_key}:{organization.id}"
    return (Bucket(f"org:{organization.id}", "organization", per_org),
            Bucket(credential_key, credential_policy, per_credential))  # fmt: skip


# KEYS: the buckets, then the usage hash of this minute. ARGV: n, then (tokens per ms, capacity) per bucket, then
# the organization id to count the request for ("" for none). Returns {allowed, retry ms, then (tokens left,
# ms until full) per bucket}. Nothing is taken unless every bucket has a token.
_TAKE = """
local n = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local have = {}
local allowed = 1
local wait = 0
for i = 1, n do
  local rate, cap = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 't', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or at == nil then tokens = cap; at = now end
  tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
  have[i] = tokens
  if tokens < 1 then
    allowed = 0
    wait = math.max(wait, (1 - tokens) / rate)
  end
end
local out = {allowed, math.ceil(wait)}
for i = 1, n do
  local rate, cap = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tokens = have[i]
  if allowed == 1 then tokens = tokens - 1 end
  redis.call('HSET', KEYS[i], 't', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tokens) / rate) + 1000)
  out[#out + 1] = math.floor(tokens)
  out[#out + 1] = math.ceil((cap - tokens) / rate)
end
local org = ARGV[2 * n + 2]
if org ~= nil and org ~= '' then
  redis.call('HINCRBY', KEYS[n + 1], (allowed == 1) and ('r:' .. org) or ('l:' .. org), 1)
  redis.call('EXPIRE', KEYS[n + 1], tonumber(ARGV[2 * n + 3]))
end
return out
"""


def _minute(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


def _usage_key(minute: int) -> str:
    return f"usage:{minute}"


def _redis() -> tuple[Any, Any] | None:
    """(client, the cache backend) when the cache is Redis, else None."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):
        return None
    from public_app.cache import _redis_client

    return _redis_client(backend._cache), backend


_SHA = hashlib.sha1(_TAKE.encode()).hexdigest()  # noqa: S324 (Redis names scripts by their SHA-1)


class Take:
    """One decision over `buckets`, counted for `organization_id`: queued in a Redis pipeline (`queue`, then
    `parse` its result) or run alone (`run`)."""

    def __init__(self, buckets: Sequence[Bucket], organization_id: int | None) -> None:
        self.buckets = tuple(buckets)
        self.organization_id = organization_id

    def _call(self, backend: Any) -> tuple[list[str], list[Any]]:
        keys = [backend.make_key(f"rl2:{b.key}") for b in self.buckets]
        keys.append(backend.make_key(_usage_key(_minute())))
        args: list[Any] = [len(self.buckets)]
        for bucket in self.buckets:
            args += [repr(bucket.per_ms), repr(bucket.capacity)]
        args += [str(self.organization_id or ""), _USAGE_KEEP_SECONDS]
        return keys, args

    def queue(self, pipeline: Any, client: Any, backend: Any) -> None:
        # EVALSHA itself: redis-py's Script objects would ask SCRIPT EXISTS first, a second round trip per request.
        keys, args = self._call(backend)
        pipeline.execute_command("EVALSHA", _SHA, len(keys), *keys, *args)

    def parse(self, raw: Any) -> Decision | None:
        if isinstance(raw, Exception):  # NOSCRIPT after a Redis restart (loaded now), or the cache failing
            return self.run()
        values = [int(v) for v in raw]
        allowed, wait_ms, rest = bool(values[0]), values[1], values[2:]
        return Decision(allowed=allowed, buckets=self.buckets, remaining=tuple(rest[0::2]),
                        full_in_ms=tuple(rest[1::2]), retry_after=max(1, math.ceil(wait_ms / 1000)))  # fmt: skip

    def run(self) -> Decision | None:
        """Alone: one round trip on Redis; the cache API otherwise. None when the cache cannot say (fail open)."""
        if not self.buckets:
            return None
        try:
            found = _redis()
            if found is not None:
                client, backend = found
                keys, args = self._call(backend)
                try:
                    raw = client.evalsha(_SHA, len(keys), *keys, *args)
                except NoScriptError:  # the first call since Redis started
                    client.script_load(_TAKE)
                    raw = client.evalsha(_SHA, len(keys), *keys, *args)
                return self.parse(raw)
            return self._run_cache_api()
        except Exception:
            logger.warning("rate limits not applied: cache unavailable", exc_info=True)
            return None

    def _run_cache_api(self) -> Decision:
        now = time.time() * 1000
        names = [f"rl2:{b.key}" for b in self.buckets]
        found = cache.get_many(names)
        have = []
        wait = 0.0
        for bucket, name in zip(self.buckets, names, strict=True):
            tokens, at = found.get(name, (bucket.capacity, now))
            tokens = min(bucket.capacity, tokens + max(0.0, now - at) * bucket.per_ms)
            have.append(tokens)
            if tokens < 1:
                wait = max(wait, (1 - tokens) / bucket.per_ms)
        allowed = wait == 0
        if allowed:
            have = [tokens - 1 for tokens in have]
        timeout = max(60, settings.RATELIMIT_BURST_SECONDS * 2)
        cache.set_many({name: (tokens, now) for name, tokens in zip(names, have, strict=True)}, timeout)
        if self.organization_id:
            usage_count(self.organization_id, "r" if allowed else "l")
        return Decision(allowed=allowed, buckets=self.buckets, remaining=tuple(math.floor(t) for t in have),
                        full_in_ms=tuple(math.ceil((b.capacity - t) / b.per_ms) for b, t in zip(self.buckets, have,
                                                                                                  strict=True)),
                        retry_after=max(1, math.ceil(wait / 1000)))  # fmt: skip


# Usage per organization: "r" requests let through, "l" refused (429), "t" query budget exceeded (503).
KINDS = {"r": "requests", "l": "rate_limited", "t": "query_timeouts"}


def usage_count(organization_id: int, kind: str) -> None:
    """Count one event outside the bucket script (query timeouts; every event with the database cache)."""
    try:
        found = _redis()
        if found is not None:
            client, backend = found
            key = backend.make_key(_usage_key(_minute()))
            pipeline = client.pipeline(transaction=False)
            pipeline.hincrby(key, f"{kind}:{organization_id}", 1)
            pipeline.expire(key, _USAGE_KEEP_SECONDS)
            pipeline.execute()
            return
        name = f"{_usage_key(_minute())}:{kind}:{organization_id}"
        if not cache.add(name, 1, _USAGE_KEEP_SECONDS):
            cache.incr(name)
        seen = f"{_usage_key(_minute())}:orgs"
        cache.set(seen, {*cache.get(seen, set()), organization_id}, _USAGE_KEEP_SECONDS)
    except Exception:
        logger.warning("usage of organization %s not counted: cache unavailable", organization_id, exc_info=True)


def usage_recent(minutes: int = USAGE_WINDOW_MINUTES) -> dict[int, dict[str, int]]:
    """{organization id: {"requests", "rate_limited", "query_timeouts"}} over the last `minutes` (this one
    included); {} when the cache cannot say."""
    now = _minute()
    totals: dict[int, dict[str, int]] = {}

    def add(org: int, kind: str, n: int) -> None:
        if kind in KINDS:
            entry = totals.setdefault(org, dict.fromkeys(KINDS.values(), 0))
            entry[KINDS[kind]] += n

    try:
        found = _redis()
        if found is not None:
            client, backend = found
            pipeline = client.pipeline(transaction=False)
            for minute in range(now - minutes + 1, now + 1):
                pipeline.hgetall(backend.make_key(_usage_key(minute)))
            for mapping in pipeline.execute():
                for field, value in mapping.items():
                    kind, _, org = (field.decode() if isinstance(field, bytes) else field).partition(":")
                    add(int(org), kind, int(value))
            return totals
        for minute in range(now - minutes + 1, now + 1):
            orgs = cache.get(f"{_usage_key(minute)}:orgs", set())
            names = [f"{_usage_key(minute)}:{kind}:{org}" for org in orgs for kind in KINDS]
            for name, value in cache.get_many(names).items():
                _, kind, org = name.rsplit(":", 2)
                add(int(org), kind, int(value))
    except Exception:
        logger.warning("usage not read: cache unavailable", exc_info=True)
        return {}
    return totals


def usage_report(top: int) -> list[dict[str, Any]]:
    """Per-organization usage over the last USAGE_WINDOW_MINUTES with the job backlog: the `top` organizations by
    requests (then backlog) under their own slug, everyone else summed as "other" (bounded label cardinality)."""
    from django.db.models import Count, Q

    from public_app.models import Organization, OutboxMessage

    usage = usage_recent()
    counted = (OutboxMessage.objects.exclude(organization_id=None).values("organization_id")
               .annotate(jobs=Count("id"), held=Count("id", filter=Q(held=True))).order_by())  # fmt: skip
    backlog: dict[int, dict[str, Any]] = {row["organization_id"]: dict(row) for row in counted}  # type: ignore[misc]
    ids = set(usage) | set(backlog)
    zero = dict.fromkeys(KINDS.values(), 0)
    rows = [{"organization_id": org, **usage.get(org, zero), "jobs_waiting": backlog.get(org, {}).get("jobs", 0),
             "jobs_held": backlog.get(org, {}).get("held", 0)} for org in ids]  # fmt: skip
    rows.sort(key=lambda row: (-row["requests"], -row["jobs_waiting"], row["organization_id"]))
    slugs = dict(Organization.objects.filter(id__in=[row["organization_id"] for row in rows[:top]])
                 .values_list("id", "slug"))  # fmt: skip
    report = [{"organization": slugs.get(row["organization_id"], str(row["organization_id"])), **row}
              for row in rows[:top]]  # fmt: skip
    if rows[top:]:
        other: dict[str, Any] = {"organization": "other", "organization_id": None}
        for key in (*KINDS.values(), "jobs_waiting", "jobs_held"):
            other[key] = sum(row[key] for row in rows[top:])
        report.append(other)
    return report


def organization_usage(organization_id: int) -> dict[str, int]:
    """One organization's line of the report (for `orgs show`)."""
    from django.db.models import Count, Q

    from public_app.models import OutboxMessage

    jobs = OutboxMessage.objects.filter(organization_id=organization_id).aggregate(
        jobs=Count("id"), held=Count("id", filter=Q(held=True)))  # fmt: skip
    return {**dict.fromkeys(KINDS.values(), 0), **usage_recent().get(organization_id, {}),
            "jobs_waiting": jobs["jobs"], "jobs_held": jobs["held"]}  # fmt: skip
