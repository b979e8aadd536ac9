"""Reads of the public schema. Every organization-scoped query starts from the organization."""

from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from public_app.cache import cached
from public_app.models import (
    ApiKey,
    AuthToken,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrganizationStatus,
    Role,
    SlugRedirect,
    User,
)


def organization_cache_key(slug: str) -> str:
    return f"org:slug:{slug}"


def membership_cache_key(organization_id: int, user_id: int) -> str:
    return f"mship:{organization_id}:{user_id}"


def token_cache_key(key_hash: str) -> str:
    return f"tok:{key_hash}"


def user_cache_key(user_id: int) -> str:
    return f"user:{user_id}"


def organization_load(*, slug: str) -> Organization | None:
    return Organization.objects.filter(slug=slug).first()


def slug_redirect_target(*, slug: str) -> Organization | None:
    """The organization that used `slug` until a rename, while the redirect window lasts."""
    redirect = (
        SlugRedirect.objects.filter(old_slug=slug, expires_at__gt=timezone.now()).select_related("organization").first()
    )
    return redirect.organization if redirect else None


def membership_role_load(*, organization_id: int, user_id: int) -> str | None:
    """The role an active membership gives; none for a directory's membership of an account whose address is not
    verified yet (whoever holds such an account has not shown they read the mailbox the directory named)."""
    memberships = Membership.objects.active().filter(organization_id=organization_id, user_id=user_id)
    memberships = memberships.exclude(via_directory=True, user__email_verified_at__isnull=True)
    return memberships.values_list("role", flat=True).first()


def membership_role_cached(*, organization_id: int, user_id: int) -> str | None:
    return cached(
        membership_cache_key(organization_id, user_id),
        lambda: membership_role_load(organization_id=organization_id, user_id=user_id),
    )


def auth_token_load(*, key_hash: str) -> Mapping[str, Any] | None:
    """The live token for this hash as `{"id", "user_id", "expires_at", "key_hash"}`, or None (unknown, revoked,
    inactive user)."""
    return (
        AuthToken.objects.filter(key_hash=key_hash, revoked_at__isnull=True, user__is_active=True)
        .values("id", "user_id", "expires_at", "key_hash")
        .first()
    )


def account_load(*, user_id: int) -> Mapping[str, Any] | None:
    """What a request needs of an active account (`/me`, the audit log's actor), or None (inactive, unknown)."""
    users = User.objects.filter(id=user_id, is_active=True)
    return users.values("id", "uid", "email", "name", "email_verified_at").first()


def api_key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def api_key_load(*, key_hash: str) -> Mapping[str, Any] | None:
    """The live (not revoked) key for this hash; expiry is checked by the caller on every request."""
    return (
        ApiKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True)
        .values("id", "uid", "organization_id", "role", "name", "expires_at", "key_hash")
        .first()
    )


def api_key_list(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization, revoked_at__isnull=True).select_related("created_by")


def user_get(*, user_id: int) -> User | None:
    return User.objects.filter(id=user_id, is_active=True).first()


def organization_list_for_user(*, user_id: int) -> QuerySet[Membership]:
    """The organization switcher: the caller's memberships with their organizations (paginate by
    `last_accessed_at`: most recently used first). Organizations being deleted are listed to their owners only."""
    return (
        Membership.objects.active()
        .filter(user_id=user_id)
        .exclude(Q(organization__status=OrganizationStatus.DELETING) & ~Q(role=Role.OWNER))
        .select_related("organization")
    )


def member_list(*, organization: Organization, status: str | None = None) -> QuerySet[Membership]:
    """Members, active and deactivated (`status` picks one kind)."""
    members = Membership.objects.filter(organization=organization).select_related("user")
    if status == "active":
        members = members.filter(deactivated_at__isnull=True)
    elif status == "deactivated":
        members = members.filter(deactivated_at__isnull=False)
    return members


def member_get(*, organization: Organization, user_uid: str) -> Membership | None:
    return Membership.objects.filter(organization=organization, user__uid=user_uid).select_related("user").first()


def invitation_list_pending(*, organization: Organization) -> QuerySet[Invitation]:
    """Pending invitations, including expired ones not yet swept (their status says `expired`)."""
    return Invitation.objects.filter(organization=organization, status=InvitationStatus.PENDING).select_related(
        "invited_by"
    )


def invitation_get_for_email(*, uid: str, email: str) -> Invitation | None:
    """An invitation addressed to this email by its id, unless cancelled or declined (`/me/invitations/{id}`)."""
    return (
        Invitation.objects.select_related("organization")
        .filter(uid=uid, email=email)
        .exclude(status__in=[InvitationStatus.CANCELLED, InvitationStatus.DECLINED])
        .first()
    )


def invitation_list_for_email(*, email: str) -> QuerySet[Invitation]:
    """Live invitations addressed to this email, in organizations that are active."""
    return Invitation.objects.filter(
        email=email,
        status=InvitationStatus.PENDING,
        expires_at__gt=timezone.now(),
        organization__status=OrganizationStatus.ACTIVE,
    ).select_related("organization", "invited_by")
