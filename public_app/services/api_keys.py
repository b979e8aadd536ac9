"""Organization API keys: created with a role (`admin`, `member` or a custom role), shown once, revoked at once."""

import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Access, AccessKind, Capability, Roles
from public_app.cache import invalidate
from public_app.events import Target, happened
from public_app.locks import organization_lock, user_session_lock
from public_app.models import ApiKey, ApiKeyRole, Membership, Organization, User
from public_app.secrets import API_KEY_PREFIX, hash_secret
from public_app.selectors import api_key_cache_key

_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"


def _target(key: ApiKey) -> Target:
    return Target("api_key", key.uid, key.name)


def _new_secret() -> tuple[str, str]:
    """(the visible prefix, the full key)."""
    visible = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{API_KEY_PREFIX}{visible}", f"{API_KEY_PREFIX}{visible}_{secrets.token_urlsafe(32)}"


def _require_creator_covers(organization: Organization, user_id: int, key_role: str) -> None:
    """The user's role now (read under the organization lock) may manage keys and covers everything `key_role` can."""
    memberships = Membership.objects.active().filter(organization=organization, user_id=user_id)
    role = memberships.values_list("role", flat=True).first()
    roles = Roles.load(organization.id)
    if role is None or not roles.has(role, Capability.DEVELOPERS):
        raise errors.PermissionDenied()
    if not roles.covers(role, key_role):
        raise errors.PermissionDenied("A key cannot do more than the member answering for it.", code="role_too_high")


@transaction.atomic
def api_key_create(*, access: Access, name: str, role: str, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Returns the key row and the full key, which is never retrievable again.

        Under the organization's lock, like role changes and removals: a key created while its creator is being
        demoted or removed either exists before the change (and is revoked by it) or sees the new role (and is
        refused). The creator's role at this moment must cover the key's. A user creates keys (API keys never do); the
    system (ops) creates keys that answer to nobody."""
    organization = access.org
    created_by_id = access.user_id if access.is_user else None
    if created_by_id is not None:
        user_session_lock(created_by_id, access.token_id)  # first the account (claims), then the organization
    organization_lock(organization.id)  # a custom role's deletion takes it too
    roles = Roles.load(organization.id)
    if role not in ApiKeyRole.values and role not in roles.custom:
        raise errors.ValidationFailed.for_field("role", "Role must be `admin`, `member` or one of the organization's "
                                                        "custom roles.")  # fmt: skip
    if created_by_id is not None:
        _require_creator_covers(organization, created_by_id, role)
    elif access.kind != AccessKind.SYSTEM:
        raise errors.PermissionDenied("API keys cannot do this; sign in as a user.")
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.ValidationFailed.for_field("expires_at", "The expiry must be in the future.")
    prefix, raw = _new_secret()
    key = ApiKey.objects.create(
        organization=organization,
        name=name,
        role=role,
        prefix=prefix,
        key_hash=hash_secret(raw),
        created_by_id=created_by_id,
        expires_at=expires_at,
    )
    happened(access=access, action="api_key.created", target=_target(key), data={"role": role})
    return key, raw


@transaction.atomic
def api_key_revoke(*, access: Access, key_uid: str) -> None:
    key = ApiKey.objects.select_for_update().filter(organization=access.org, uid=key_uid, revoked_at=None).first()
    if key is None:
        raise errors.NotFound("API key not found.")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at", "updated_at"])
    happened(access=access, action="api_key.revoked", target=_target(key))


@transaction.atomic
def api_key_rotate(*, access: Access, key_uid: str) -> tuple[ApiKey, str]:
    """A new secret for the same key (same id, name, role and expiry); the old secret stops working on the next
    request. Whoever rotates it knows the new secret, so the key now answers to them: their removal revokes it
    (a key handed over from a departing member is rotated so that its old secret, which they know, ends).

    Under the organization's lock, with the rotator's role re-read, like creation: a rotation racing the
    rotator's demotion or removal cannot hand them a secret the change would not have revoked."""
    organization = access.org
    rotated_by_id = access.user_id if access.is_user else None
    if rotated_by_id is not None:
        user_session_lock(rotated_by_id, access.token_id)
        organization_lock(organization.id)
    elif access.kind != AccessKind.SYSTEM:
        raise errors.PermissionDenied("API keys cannot do this; sign in as a user.")
    key = ApiKey.objects.select_for_update().filter(organization=organization, uid=key_uid, revoked_at=None).first()
    if key is None:
        raise errors.NotFound("API key not found.")
    if rotated_by_id is not None:
        _require_creator_covers(organization, rotated_by_id, key.role)
    old_hash = key.key_hash
    key.prefix, raw = _new_secret()
    key.key_hash = hash_secret(raw)
    fields = ["prefix", "key_hash", "updated_at"]
    if rotated_by_id is not None:
        key.created_by_id = rotated_by_id
        fields.append("created_by")
    key.save(update_fields=fields)
    invalidate([api_key_cache_key(old_hash)])  # the save signal only knows the new hash
    happened(access=access, action="api_key.rotated", target=_target(key))
    return key, raw


def api_keys_of_departing_member(*, access: Access, user_id: int, hand_to_user_id: int | None = None) -> int:
    """A member's access ends, and so do the keys they created here: revoked, or handed to an owner when an owner
    chose that explicitly (the key then answers to that owner). Call inside the removal's transaction; returns how
    many keys it touched."""
    keys = list(ApiKey.objects.select_for_update().filter(organization=access.org, created_by_id=user_id,
                                                           revoked_at=None))  # fmt: skip
    for key in keys:
        if hand_to_user_id is not None:
            key.created_by_id = hand_to_user_id
            key.save(update_fields=["created_by", "updated_at"])
            happened(access=access, action="api_key.transferred", target=_target(key),
                     data={"from_user_id": user_id, "to_user_id": hand_to_user_id})  # fmt: skip
        else:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at", "updated_at"])  # each save invalidates the key's cached lookup
            happened(access=access, action="api_key.revoked", target=_target(key), data={"reason": "creator_removed"})
    return len(keys)


def api_keys_beyond_role_revoke(*, access: Access, user_id: int, role: str) -> int:
    """A member's role changed: the keys they created here that can do something the new role cannot end (a key
    never outranks the person answering for it). Call inside the change's transaction."""
    roles = Roles.load(access.org.id)
    keys = [key for key in ApiKey.objects.select_for_update().filter(organization=access.org, created_by_id=user_id,
                                                                      revoked_at=None)
            if not roles.covers(role, key.role)]  # fmt: skip
    for key in keys:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        happened(access=access, action="api_key.revoked", target=_target(key),
                 data={"reason": "creator_role_changed", "creator_role": role})  # fmt: skip
    return len(keys)


def api_keys_beyond_edited_role_revoke(*, access: Access, role: str) -> int:
    """A custom role's permissions changed: every key that now does more than the member answering for it ends (keys
    holding the role, and keys whose creator holds it). Call inside the edit's transaction, after it."""
    organization = access.org
    roles = Roles.load(organization.id)
    creators = dict(Membership.objects.active().filter(organization=organization).values_list("user_id", "role"))
    keys = ApiKey.objects.select_for_update().filter(organization=organization, revoked_at=None,
                                                     created_by_id__isnull=False)  # fmt: skip
    revoked = 0
    for key in keys:
        creator_role = creators.get(key.created_by_id) if key.created_by_id is not None else None
        if role not in (key.role, creator_role) or roles.covers(creator_role, key.role):
            continue
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        happened(access=access, action="api_key.revoked", target=_target(key),
                 data={"reason": "role_edited", "role": role, "creator_role": creator_role})  # fmt: skip
        revoked += 1
    return revoked


def api_keys_of_deactivated_user(*, user: User) -> int:
    """A deactivated account's keys end in every organization (recorded in each one's audit log)."""
    return api_keys_of_user_revoke(user=user, reason="creator_deactivated")


def api_keys_of_user_revoke(*, user: User, reason: str) -> int:
    """Every live key `user` created, in every organization, ends (recorded in each one's audit log)."""
    keys = list(ApiKey.objects.filter(created_by=user, revoked_at=None).select_related("organization"))
    for key in keys:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        happened(access=Access.system(key.organization), action="api_key.revoked", target=_target(key),
                 data={"reason": reason})  # fmt: skip
    return len(keys)
