"""Cache invalidation for request-path lookups, on every write of the rows they read (whoever writes them)."""

from typing import Any

from django.db.models.signals import post_delete, post_save

from public_app.cache import invalidate
from public_app.models import ApiKey, AuthToken, CustomRole, Membership, Organization, User
from public_app.selectors import (
    api_key_cache_key,
    membership_cache_key,
    organization_cache_key,
    token_cache_key,
    user_cache_key,
)


def _organization_changed(sender: Any, instance: Organization, **kwargs: Any) -> None:
    slugs = {instance.slug, getattr(instance, "_loaded_slug", None)}
    invalidate(organization_cache_key(slug) for slug in slugs if slug)


def _custom_role_changed(sender: Any, instance: CustomRole, **kwargs: Any) -> None:
    # The organization's cache entry carries its roles (public_app.services.callers).
    slug = Organization.objects.filter(id=instance.organization_id).values_list("slug", flat=True).first()
    if slug:
        invalidate([organization_cache_key(slug)])


def _membership_changed(sender: Any, instance: Membership, **kwargs: Any) -> None:
    invalidate([membership_cache_key(instance.organization_id, instance.user_id)])


def _token_changed(sender: Any, instance: AuthToken, **kwargs: Any) -> None:
    invalidate([token_cache_key(instance.key_hash)])


def _api_key_changed(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    invalidate([api_key_cache_key(instance.key_hash)])


def _account_changed(sender: Any, instance: User, **kwargs: Any) -> None:
    # Name, email, verification, deactivation: the next request of any of the user's tokens reads the account again;
    # the directory's memberships give access once the address is verified (public_app.selectors).
    keys = [user_cache_key(instance.id)]
    fields = kwargs.get("update_fields")
    if fields is None or {"email_verified_at", "is_active"} & set(fields):  # not on a password rehash at login
        memberships = Membership.objects.filter(user_id=instance.id, via_directory=True)
        directory = memberships.values_list("organization_id", flat=True)
        keys += [membership_cache_key(org_id, instance.id) for org_id in directory]
    invalidate(keys)


def _user_changed(sender: Any, instance: User, created: bool = False, **kwargs: Any) -> None:
    # Deactivated by any path (the admin, a retired unverified account): the keys it created stop working too.
    if not created and not instance.is_active:
        from public_app.services.api_keys import api_keys_of_deactivated_user

        api_keys_of_deactivated_user(user=instance)


def connect() -> None:
    post_save.connect(_user_changed, sender=User, dispatch_uid="user-deactivated-keys")
    for signal in (post_save, post_delete):
        signal.connect(_organization_changed, sender=Organization, dispatch_uid="org-cache")
        signal.connect(_membership_changed, sender=Membership, dispatch_uid="membership-cache")
        signal.connect(_custom_role_changed, sender=CustomRole, dispatch_uid="custom-role-cache")
        signal.connect(_token_changed, sender=AuthToken, dispatch_uid="token-cache")
        signal.connect(_api_key_changed, sender=ApiKey, dispatch_uid="api-key-cache")
        signal.connect(_account_changed, sender=User, dispatch_uid="account-cache")
