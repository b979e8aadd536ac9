"""The caller of a request, from its bearer token and the organization its path names, in one cache round trip.

Authentication needs the token (or API key), the account behind a user token, the organization `{slug}` names and
the caller's role in it. Each process keeps what it read as a memo under (token hash, slug) together with the
generation of every cache key it came from (public_app.cache). A request then costs one round trip: one pipeline
that reads those generations and takes the throttle of the last-used stamp. Any write to a token, key, account,
organization or membership bumps its generation (public_app.signals), so the next request in every process reads
it again: removal, role change, revocation and deactivation take effect at once, as with the shared cache alone.
A process without a memo reads the shared cache in two round trips (token and organization; then account and
membership) and the database for what is missing there.
"""

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from public_app.access import Access, AccessKind, Account, roles_of
from public_app.cache import adds_and_ride, cached_entries, memo_confirm, memo_get, memo_put
from public_app.fairshare import Decision, OrgLimits, Take, buckets_for
from public_app.models import ApiKey, Membership, Organization
from public_app.secrets import API_KEY_PREFIX, USER_TOKEN_PREFIX, hash_secret, hashes_match
from public_app.selectors import (
    account_load,
    api_key_cache_key,
    api_key_load,
    auth_token_load,
    membership_cache_key,
    membership_role_load,
    organization_cache_key,
    organization_load,
    token_cache_key,
    user_cache_key,
)

# Last-used stamps are written at most once a minute per membership and per key.
STAMP_SECONDS = 60


@dataclass(frozen=True)
class Caller:
    """Who is calling (`access`, in no organization yet), what `slug` names now (None: nothing, or no slug was
    asked) and the caller's role there (None: not a member, or a key of another organization)."""

    access: Access
    organization: Organization | None
    role: str | None
    rate: Decision | None = None  # what the fair-share buckets said (None: no limits apply, or the cache is out)


@dataclass(frozen=True)
class _Found:
    """What one lookup read: kept as a process's memo, so nothing here may be mutated; the organization is kept
    pickled and every request gets its own copy."""

    credential: Mapping[str, Any]
    account: Mapping[str, Any] | None
    organization: bytes | None
    organization_id: int | None
    role: str | None
    limits: OrgLimits | None = None


def caller_authenticate(raw: str, slug: str | None = None) -> Caller | None:
    """The caller behind a bearer token (a user token `ut_…` or an organization API key `ak_…`), with the
    organization `slug` names and the caller's role in it; None when the token is not a live credential."""
    if len(raw) > 200 or not raw.startswith((USER_TOKEN_PREFIX, API_KEY_PREFIX)):
        return None
    is_key = raw.startswith(API_KEY_PREFIX)
    key_hash = hash_secret(raw)
    memo = memo_get((key_hash, slug))
    found: _Found | None = None
    stamps: list[bool] = []
    throttles: list[tuple[str, int]] = []
    take: Take | None = None
    rate: Decision | None = None
    if memo is not None:
        throttles = _throttles(memo.value, is_key)
        take = _take(memo.value, is_key)
        current, stamps, rate = memo_confirm(memo, throttles, take)
        found = memo.value if current else None
    if found is None:
        found, entries = _read(key_hash, slug, is_key)
        if found is None:
            return None
        memo_put((key_hash, slug), entries, found)
        # What the confirmation took was for another caller (or there was none): take it now, in one round trip.
        fresh_throttles = _throttles(found, is_key)
        fresh = _take(found, is_key)
        if fresh is not None and take is not None and fresh.buckets == take.buckets:
            fresh = None
        if fresh_throttles != throttles or fresh is not None:
            added, taken = adds_and_ride(fresh_throttles if fresh_throttles != throttles else [], fresh)
            if fresh_throttles != throttles:
                throttles, stamps = fresh_throttles, added
            if fresh is not None:
                rate = taken
    assert found is not None
    credential = found.credential
    if not hashes_match(credential["key_hash"], key_hash):
        return None
    now = timezone.now()
    if credential["expires_at"] is not None and credential["expires_at"] <= now:
        return None
    organization = pickle.loads(found.organization) if found.organization is not None else None  # noqa: S301
    if any(stamps):
        _stamp(found, is_key, now)
    return Caller(access=_access(found, is_key), organization=organization, role=found.role, rate=rate)


def access_from_token(raw: str) -> Access | None:
    """The caller behind a bearer token, in no organization."""
    caller = caller_authenticate(raw)
    return caller.access if caller is not None else None


def _read(key_hash: str, slug: str | None, is_key: bool) -> tuple[_Found | None, list[tuple[str, int | None]]]:
    credential_key = api_key_cache_key(key_hash) if is_key else token_cache_key(key_hash)
    load_credential = api_key_load if is_key else auth_token_load
    first: list[tuple[str, Callable[[], Any]]] = [(credential_key, lambda: load_credential(key_hash=key_hash))]
    if slug is not None:
        first.append((organization_cache_key(slug), lambda: _organization_with_roles(slug)))
    read = cached_entries(first)
    credential: Mapping[str, Any] | None = read[0][0]
    organization: Organization | None = read[1][0] if slug is not None else None
    entries = [(key, generation) for (key, _), (_, generation) in zip(first, read, strict=True)]
    if credential is None:
        return None, entries
    account, role = None, None
    if is_key:
        if organization is not None and credential["organization_id"] == organization.id:
            role = credential["role"]
    else:
        user_id = credential["user_id"]
        second: list[tuple[str, Callable[[], Any]]] = [(user_cache_key(user_id), lambda: account_load(user_id=user_id))]
        if organization is not None:
            org_id = organization.id
            second.append((membership_cache_key(org_id, user_id),
                           lambda: membership_role_load(organization_id=org_id, user_id=user_id)))  # fmt: skip
        read = cached_entries(second)
        account = read[0][0]
        role = read[1][0] if organization is not None else None
        entries += [(key, generation) for (key, _), (_, generation) in zip(second, read, strict=True)]
        if account is None:  # deactivated since the token was cached
            return None, entries
    pickled = pickle.dumps(organization) if organization is not None else None
    organization_id = organization.id if organization is not None else None
    limits = OrgLimits.of(organization) if organization is not None else None
    return _Found(credential=credential, account=account, organization=pickled, organization_id=organization_id,
                  role=role, limits=limits), entries  # fmt: skip


def _organization_with_roles(slug: str) -> Organization | None:
    """The organization with its roles (public_app.access.roles_of), as the authorization cache keeps it: a custom
    role's edit invalidates this entry (public_app.signals), so the next request sees it."""
    organization = organization_load(slug=slug)
    if organization is not None:
        roles_of(organization)
    return organization


def _take(found: _Found, is_key: bool) -> Take | None:
    """The fair-share decision this caller's request asks for (public_app.fairshare), None when no limits apply."""
    key = f"ak:{found.credential['id']}" if is_key else f"ut:{found.credential['id']}"
    buckets = buckets_for(credential_key=key, credential_policy="api_key" if is_key else "user_token",
                          organization=found.limits, member=found.role is not None)  # fmt: skip
    if not buckets:
        return None
    return Take(buckets, found.organization_id if found.role is not None else None)


def _throttles(found: _Found, is_key: bool) -> list[tuple[str, int]]:
    if is_key:
        return [(f"apikey-used:{found.credential['id']}", STAMP_SECONDS)]
    if found.role is not None and found.organization_id is not None:
        return [(f"membership-touch:{found.organization_id}:{found.credential['user_id']}", STAMP_SECONDS)]
    return []


def _stamp(found: _Found, is_key: bool, now: Any) -> None:
    """last_used_at of a key; last_accessed_at of a membership (the organization switcher's order)."""
    if is_key:
        ApiKey.objects.filter(id=found.credential["id"]).update(last_used_at=now)
    elif found.organization_id is not None:
        Membership.objects.filter(organization_id=found.organization_id, user_id=found.credential["user_id"]).update(
            last_accessed_at=now
        )


def _access(found: _Found, is_key: bool) -> Access:
    credential = found.credential
    if is_key:
        return Access(kind=AccessKind.API_KEY, api_key_id=credential["id"],
                      key_organization_id=credential["organization_id"], key_role=credential["role"],
                      uid=credential["uid"], label=credential["name"])  # fmt: skip
    account = found.account or {}
    return Access(kind=AccessKind.USER, user_id=credential["user_id"], token_id=credential["id"],
                  uid=account.get("uid", ""), label=account.get("email", ""),
                  account=Account(uid=account["uid"], email=account["email"], name=account["name"],
                                  email_verified_at=account["email_verified_at"]) if account else None)  # fmt: skip
