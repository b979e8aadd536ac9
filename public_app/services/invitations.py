"""Invitations: create, resend, cancel, accept, decline; plus the tokens behind the email links.

Token = "it_" + HMAC-SHA256(key derived from SECRET_KEY, invitation uid + random 256-bit salt). The database keeps
the salt and SHA-256(token), never the token: the email job can rebuild the link, a copy of the database cannot.
A resend draws a new salt (and bumps `token_version`), so the old link stops matching at once.
"""

import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Access, Capability, Roles, roles_of
from public_app.bruteforce import guard_check, guard_failed, guard_succeeded
from public_app.events import Target, happened
from public_app.locks import organization_lock, user_session_lock
from public_app.models import Invitation, InvitationStatus, Membership, Organization, User, normalize_email
from public_app.outbox import enqueue
from public_app.ratelimit import ratelimit_check, ratelimit_record
from public_app.secrets import derived_token, hash_secret, hashes_match
from public_app.services.billing.seats import seat_check
from public_app.services.members import membership_add
from public_app.services.verification import require_verified_email, user_mark_verified

TOKEN_PREFIX = "it_"  # noqa: S105 - a prefix, not a secret
DAY = 24 * 3600


def invitation_token(invitation: Invitation) -> str:
    return derived_token(TOKEN_PREFIX, "invitation-token", f"{invitation.uid}:{invitation.token_salt}")


def _new_token(invitation: Invitation) -> None:
    invitation.token_salt = secrets.token_hex(32)
    invitation.token_hash = hash_secret(invitation_token(invitation))


def invitation_link(invitation: Invitation) -> str:
    return f"{settings.FRONTEND_URL}/invitations/{invitation_token(invitation)}"


def _target(invitation: Invitation) -> Target:
    return Target("invitation", invitation.uid, invitation.email)


def _event_data(invitation: Invitation) -> dict:
    return {"invitation": {"id": invitation.uid, "email": invitation.email, "role": invitation.role}}


def _enqueue_email(invitation: Invitation) -> None:
    enqueue("send_invitation_email", invitation.id, invitation.token_version,
            organization_id=invitation.organization_id)  # fmt: skip


def _check_rate_limits(organization: Organization, email: str) -> None:
    ratelimit_check(f"inv-org:{organization.id}", limit=settings.RATELIMIT_INVITES_PER_ORG_PER_DAY, window=DAY)
    ratelimit_check(
        f"inv-email:{organization.id}:{email}", limit=settings.RATELIMIT_INVITES_PER_EMAIL_PER_DAY, window=DAY
    )


def _record_rate_limits(organization: Organization, email: str) -> None:
    ratelimit_record(f"inv-org:{organization.id}", window=DAY)
    ratelimit_record(f"inv-email:{organization.id}:{email}", window=DAY)


def _expire_if_due(invitation: Invitation) -> bool:
    if invitation.status != invitation.effective_status:
        invitation.status = InvitationStatus.EXPIRED
        invitation.save(update_fields=["status", "updated_at"])
        return True
    return False


def _key_holder(api_key_id: int | None, organization: Organization) -> int | None:
    """The member who answers for an API key now (its creator, or who it was handed to); refused when the key
    was revoked meanwhile (its holder's removal or demotion revokes it under the same lock)."""
    from public_app.models import ApiKey

    if api_key_id is None:
        return None
    row = ApiKey.objects.filter(id=api_key_id, organization=organization).values("revoked_at", "created_by_id").first()
    if row is None or row["revoked_at"] is not None:
        raise errors.NotAuthenticated()
    return row["created_by_id"]


def invitation_create(
    *, access: Access, email: str, role: str, expires_in_days: int = settings.INVITATION_DEFAULT_DAYS
) -> Invitation:
    """Invite `email` with `role`. Sent by a user (who answers for it), or with an API key (its holder answers for
    it), or by the system (ops; nobody answers for it)."""
    organization = access.org
    normalized = normalize_email(email)
    try:
        validate_email(normalized)
    except DjangoValidationError:
        raise errors.ValidationFailed.for_field("email", "Enter a valid email address.") from None
    roles_of(organization).require(role)
    if not 1 <= expires_in_days <= 30:
        raise errors.ValidationFailed.for_field("expires_in_days", "Must be between 1 and 30.")
    roles_of(organization).check_can_act_on(access.role or "", role, role)
    _check_rate_limits(organization, normalized)
    try:
        with transaction.atomic():
            invited_by = User.objects.filter(id=access.user_id).first() if access.user_id is not None else None
            invited_by_key_id = access.api_key_id if access.is_api_key else None
            if invited_by is not None:
                user_session_lock(invited_by.id, access.token_id)  # first the account (claims), then the organization
            organization_lock(organization.id)
            roles = Roles.load(organization.id)  # read under the lock a role's edit or deletion takes
            roles.require(role)
            # Who answers for this invitation, read now, under the lock a demotion or removal takes: the inviter,
            # or the holder of the (still live) key it is sent with. A request authorised a moment before its
            # sender's removal must not create an invitation the removal could no longer cancel.
            sent_by_id = invited_by.id if invited_by is not None else _key_holder(invited_by_key_id, organization)
            if sent_by_id is not None:
                current = (
                    Membership.objects.active().filter(organization=organization, user_id=sent_by_id)
                    .values_list("role", flat=True)
                    .first()
                )
                if current is None or not roles.has(current, Capability.MEMBERS_MANAGE):
                    raise errors.PermissionDenied()
                roles.check_can_act_on(current, role, role)
            existing = Membership.objects.filter(organization=organization, user__email=normalized).first()
            if existing is not None:
                raise errors.Conflict("This person is already a member." if existing.deactivated_at is None else
                                      "This person is a deactivated member: reactivate them instead.",
                                      code="already_member")  # fmt: skip
            for stale in Invitation.objects.filter(
                organization=organization, email=normalized, status=InvitationStatus.PENDING
            ):
                if not _expire_if_due(stale):
                    raise errors.Conflict("An invitation to this email is already pending.", code="invitation_pending")
            seat_check(organization)
            invitation = Invitation(
                organization=organization,
                email=normalized,
                role=role,
                invited_by=invited_by,
                invited_by_key_id=invited_by_key_id,
                sent_by_id=sent_by_id,
                expires_in_days=expires_in_days,
                expires_at=timezone.now() + timedelta(days=expires_in_days),
            )
            _new_token(invitation)
            invitation.save()
            happened(access=access, action="invitation.created", target=_target(invitation),
                     data={"role": role, "expires_at": invitation.expires_at.isoformat()},
                     event=_event_data(invitation))  # fmt: skip
            _enqueue_email(invitation)
    except IntegrityError:
        # The partial unique index settles two concurrent invitations of one email.
        raise errors.Conflict("An invitation to this email is already pending.", code="invitation_pending") from None
    _record_rate_limits(organization, normalized)
    return invitation


def _pending_invitation(organization: Organization, invitation_uid: str) -> Invitation:
    invitation = (
        Invitation.objects.select_for_update()
        .filter(organization=organization, uid=invitation_uid, status__in=[InvitationStatus.PENDING])
        .first()
    )
    if invitation is None:
        raise errors.NotFound("Invitation not found.")
    return invitation


def invitation_resend(*, access: Access, invitation_uid: str) -> Invitation:
    """New token and expiry; the old link stops working; a new email goes out. Works on an expired pending one."""
    organization = access.org
    with transaction.atomic():
        invitation = _pending_invitation(organization, invitation_uid)
        roles_of(organization).check_can_act_on(access.role or "", invitation.role, invitation.role)
        _check_rate_limits(organization, invitation.email)
        _new_token(invitation)
        invitation.token_version += 1
        invitation.expires_at = timezone.now() + timedelta(days=invitation.expires_in_days)
        invitation.save(update_fields=["token_salt", "token_hash", "token_version", "expires_at", "updated_at"])
        happened(access=access, action="invitation.resent", target=_target(invitation))
        _enqueue_email(invitation)
    _record_rate_limits(organization, invitation.email)
    return invitation


@transaction.atomic
def invitation_cancel(*, access: Access, invitation_uid: str) -> None:
    invitation = _pending_invitation(access.org, invitation_uid)
    roles_of(access.org).check_can_act_on(access.role or "", invitation.role, invitation.role)
    invitation.status = InvitationStatus.CANCELLED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    happened(access=access, action="invitation.cancelled", target=_target(invitation))


_GONE: dict[str, tuple[str, str]] = {
    InvitationStatus.ACCEPTED: ("This invitation has already been used.", "invitation_used"),
    InvitationStatus.CANCELLED: ("This invitation was cancelled.", "invitation_cancelled"),
    InvitationStatus.DECLINED: ("This invitation was declined.", "invitation_declined"),
    InvitationStatus.EXPIRED: ("This invitation has expired.", "invitation_expired"),
}


def invitation_by_token(token: str, *, ip: str | None = None) -> Invitation:
    """The invitation a link token points at, whatever its status; 404 for unknown or superseded tokens (each one
    a failed guess from `ip`, which is slowed down after a few)."""
    guard_check("link", ip=ip)
    invitation = None
    if token.startswith(TOKEN_PREFIX) and len(token) <= 100:
        token_hash = hash_secret(token)
        invitation = (
            Invitation.objects.select_related("organization", "invited_by").filter(token_hash=token_hash).first()
        )
        if invitation is not None and not hashes_match(invitation.token_hash, token_hash):
            invitation = None
    if invitation is None:
        guard_failed("link", ip=ip)
        raise errors.NotFound("Invitation not found.")
    guard_succeeded("link", ip=ip)
    return invitation


def invitation_raise_if_gone(invitation: Invitation) -> None:
    status = invitation.effective_status
    if status in _GONE:
        message, code = _GONE[status]
        raise errors.Gone(message, code=code)


def invitation_accept(*, invitation_id: int, user: User, ip: str | None = None, by_token: bool = False) -> Invitation:
    """Create the membership. Concurrent accepts of one invitation: the row lock lets exactly one through.

    `by_token`: the caller holds the link emailed to the invited address, which proves the address is theirs (and
    verifies it). Without it, by id from `/me/invitations`, the account's address must already be verified."""
    if not by_token:
        require_verified_email(user)
    with transaction.atomic():
        # The organization first, then the invitation: the order removals and demotions take them in (they cancel
        # the invitations the member sent), so an accept and a removal never wait on each other in a circle.
        organization_id = Invitation.objects.filter(id=invitation_id).values_list("organization_id", flat=True).first()
        if organization_id is not None:
            organization_lock(organization_id)
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("organization")
            .filter(id=invitation_id)
            .first()
        )
        if invitation is None:
            raise errors.NotFound("Invitation not found.")
        organization = invitation.organization
        if not organization.is_active:
            raise errors.NotFound("Invitation not found.")
        invitation_raise_if_gone(invitation)
        if not hmac.compare_digest(normalize_email(user.email).encode(), invitation.email.encode()):
            raise errors.PermissionDenied(
                "This invitation was sent to another email address.", code="invitation_email_mismatch"
            )
        if Membership.objects.filter(organization=organization, user=user).exists():
            raise errors.Conflict("You are already a member of this organization.", code="already_member")
        seat_check(organization, excluding_invitation_id=invitation.id)
        invitation.status = InvitationStatus.ACCEPTED
        invitation.accepted_by = user
        invitation.responded_at = timezone.now()
        invitation.save(update_fields=["status", "accepted_by", "responded_at", "updated_at"])
        access = Access.for_user(user, ip=ip)
        happened(access=access, organization=organization, action="invitation.accepted", target=_target(invitation),
                 event=_event_data(invitation))  # fmt: skip
        membership_add(organization=organization, user=user, role=invitation.role, access=access)
        if by_token:
            user_mark_verified(user=user)
    return invitation


@transaction.atomic
def invitation_decline(*, invitation_id: int, user: User, ip: str | None = None) -> None:
    require_verified_email(user)  # else anyone could turn down invitations meant for an address they typed in
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(id=invitation_id, status=InvitationStatus.PENDING, email=normalize_email(user.email))
        .first()
    )
    if invitation is None or invitation.effective_status != InvitationStatus.PENDING:
        raise errors.NotFound("Invitation not found.")
    invitation.status = InvitationStatus.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at", "updated_at"])
    happened(access=Access.for_user(user, ip=ip), organization=invitation.organization, action="invitation.declined",
             target=_target(invitation))  # fmt: skip
