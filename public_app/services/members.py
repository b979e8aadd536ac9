"""Membership rules: change role, remove, leave, deactivate and reactivate. Hierarchy and last-owner rules live here,
under a lock on the organization row so concurrent changes (two owners demoting each other) are serialized and
re-checked. Only active members count as owners for the last-owner rule, and only they take seats."""

from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Access, Capability, Roles
from public_app.events import Target, happened
from public_app.locks import organization_lock
from public_app.models import Membership, Organization, Role, User
from public_app.services.api_keys import api_keys_beyond_role_revoke
from public_app.services.billing.seats import seat_check, seats_sync_request


def _membership_of(organization: Organization, user_id: int) -> Membership:
    membership = Membership.objects.select_related("user").filter(organization=organization, user_id=user_id).first()
    if membership is None:
        raise errors.NotFound("Member not found.")
    return membership


def _other_owners(organization: Organization, user_id: int) -> int:
    owners = Membership.objects.active().filter(organization=organization, role=Role.OWNER)
    return owners.exclude(user_id=user_id).count()


def role_now(access: Access) -> str:
    """A user's role is re-read under the organization lock (it may have changed since the request was
    authorized: two owners demoting each other); an API key's role is fixed."""
    if not access.is_user or access.user_id is None:
        return access.role or ""
    return _membership_of(access.org, access.user_id).role


def _member_target(membership: Membership) -> Target:
    return Target("user", membership.user.uid, membership.user.email)


def _membership_happened(
    access: Access, organization: Organization, action: str, membership: Membership, data: dict
) -> None:
    """A membership changed: the audit entry and the webhook event (public_app.events), and, when the member
    count changed, the seat sync with Stripe (on commit)."""
    user = membership.user
    happened(access=access, organization=organization, action=action, target=_member_target(membership),
             data=data, event={"user": {"id": user.uid, "email": user.email}, "role": membership.role})  # fmt: skip
    if action in ("member.added", "member.removed", "member.deactivated", "member.reactivated"):
        seats_sync_request(organization=organization)


@transaction.atomic
def membership_change_role(*, access: Access, user_id: int, role: str) -> Membership:
    organization = access.org
    organization_lock(organization.id)
    roles = Roles.load(organization.id)
    roles.require(role)
    current_role = role_now(access)
    if not roles.has(current_role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()
    membership = _membership_of(organization, user_id)
    if membership.role == role:
        return membership
    if membership.deactivated_at is not None:
        raise errors.Conflict("This member is deactivated: reactivate them first.", code="member_deactivated")
    roles.check_can_act_on(current_role, membership.role, role)
    if membership.role == Role.OWNER and _other_owners(organization, user_id) == 0:
        raise errors.PermissionDenied("An organization must keep at least one owner.", code="last_owner")
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    _membership_happened(access, organization, "member.role_changed", membership, {"from": previous, "to": role})
    api_keys_beyond_role_revoke(access=access, user_id=user_id, role=role)
    invitations_beyond_role_cancel(organization=organization, access=access, user_id=user_id, role=role)
    return membership


@transaction.atomic
def membership_remove(*, access: Access, user_id: int, api_keys_to_user_id: int | None = None) -> None:
    """Remove a member, or leave (`user_id` is the actor's own). Access ends when this commits, for the member's
    tokens and for the API keys they created here: those are revoked, unless an owner hands them to an owner
    (`api_keys_to_user_id`)."""
    from public_app.services.api_keys import api_keys_of_departing_member

    organization = access.org
    organization_lock(organization.id)
    current_role = role_now(access)
    roles = Roles.load(organization.id)
    membership = _membership_of(organization, user_id)
    if api_keys_to_user_id is not None:
        if current_role != Role.OWNER:
            raise errors.PermissionDenied("Only an owner can keep a departing member's API keys alive.")
        if not Membership.objects.filter(organization=organization, user_id=api_keys_to_user_id,
                                         role=Role.OWNER).exclude(user_id=user_id).exists():  # fmt: skip
            raise errors.ValidationFailed.for_field("api_keys_to", "API keys can only be handed to another owner.")
    leaving = access.is_user and access.user_id == user_id
    if not leaving:
        if not roles.has(current_role, Capability.MEMBERS_MANAGE):
            raise errors.PermissionDenied()
        roles.check_can_act_on(current_role, membership.role)
    if membership.role == Role.OWNER and _other_owners(organization, user_id) == 0:
        raise errors.PermissionDenied("An organization must keep at least one owner.", code="last_owner")
    membership.delete()
    api_keys_of_departing_member(access=access, user_id=user_id, hand_to_user_id=api_keys_to_user_id)
    invitations_beyond_role_cancel(organization=organization, access=access, user_id=user_id, role=None)
    _membership_happened(access, organization, "member.removed", membership, {"role": membership.role, "left": leaving})


@transaction.atomic
def membership_deactivate(*, access: Access, user_id: int) -> Membership:
    """Deactivate a member: access ends when this commits (their tokens stop working here; the API keys they created
    here are revoked; the invitations they sent are cancelled), the seat is released, the role and the history stay
    for `membership_reactivate`. Idempotent."""
    from public_app.services.api_keys import api_keys_of_departing_member

    organization = access.org
    organization_lock(organization.id)
    current_role = role_now(access)
    roles = Roles.load(organization.id)
    membership = _membership_of(organization, user_id)
    if access.is_user and access.user_id == user_id:
        raise errors.PermissionDenied("You cannot deactivate yourself; leave the organization instead.")
    if not roles.has(current_role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()
    roles.check_can_act_on(current_role, membership.role)
    if membership.deactivated_at is not None:
        return membership
    if membership.role == Role.OWNER and _other_owners(organization, user_id) == 0:
        raise errors.PermissionDenied("An organization must keep at least one active owner.", code="last_owner")
    membership.deactivated_at = timezone.now()
    membership.save(update_fields=["deactivated_at", "updated_at"])
    api_keys_of_departing_member(access=access, user_id=user_id, hand_to_user_id=None)
    invitations_beyond_role_cancel(organization=organization, access=access, user_id=user_id, role=None,
                                   reason="inviter_deactivated")  # fmt: skip
    _membership_happened(access, organization, "member.deactivated", membership, {"role": membership.role})
    return membership


@transaction.atomic
def membership_reactivate(*, access: Access, user_id: int) -> Membership:
    """Give a deactivated member their access back, with the role they had, if a seat is free (409
    `seat_limit_reached` otherwise). Idempotent."""
    organization = access.org
    organization_lock(organization.id)
    current_role = role_now(access)
    roles = Roles.load(organization.id)
    membership = _membership_of(organization, user_id)
    if not roles.has(current_role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()
    roles.check_can_act_on(current_role, membership.role)
    if membership.deactivated_at is None:
        return membership
    seat_check(organization)
    membership.deactivated_at = None
    membership.save(update_fields=["deactivated_at", "updated_at"])
    _membership_happened(access, organization, "member.reactivated", membership, {"role": membership.role})
    return membership


def invitations_beyond_role_cancel(
    *, organization: Organization | None, access: Access, user_id: int, role: str | None, reason: str = ""
) -> int:
    """The pending invitations a member sent (themselves or with an API key they answer for) that they could not
    send now end with the change: all of them when they leave (`role` None), those above what the new role may
    grant when demoted. An invitation is a way in, like an API key: a departing admin must not leave one for an
    address of theirs. `organization` None: in every organization (an account handed to its mailbox's reader)."""
    from django.db.models import Q

    from public_app.models import Invitation, InvitationStatus

    loaded: dict[int, Roles] = {}

    def still_allowed(invitation: Invitation) -> bool:
        if invitation.organization_id not in loaded:
            loaded[invitation.organization_id] = Roles.load(invitation.organization_id)
        roles = loaded[invitation.organization_id]
        if role is None or not roles.has(role, Capability.MEMBERS_MANAGE):
            return False
        return roles.may_grant(role, invitation.role)

    pending = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(Q(sent_by_id=user_id) | Q(invited_by_id=user_id), status=InvitationStatus.PENDING)
    )
    if organization is not None:
        pending = pending.filter(organization=organization)
    cancelled = 0
    for invitation in pending:
        if still_allowed(invitation):
            continue
        invitation.status = InvitationStatus.CANCELLED
        invitation.responded_at = timezone.now()
        invitation.save(update_fields=["status", "responded_at", "updated_at"])
        why = reason or ("inviter_removed" if role is None else "inviter_role_changed")
        happened(access=access, organization=invitation.organization, action="invitation.cancelled",
                 target=Target("invitation", invitation.uid, invitation.email), data={"reason": why})  # fmt: skip
        cancelled += 1
    return cancelled


def membership_add(
    *, organization: Organization, user: User, role: str, access: Access, data: dict | None = None,
    via_directory: bool = False,
) -> Membership:
    """Add a member (from an accepted invitation, a verified domain or the directory: `data` says how). Call inside
    the caller's transaction."""
    membership = Membership.objects.create(organization=organization, user=user, role=role,
                                           via_directory=via_directory)  # fmt: skip
    _membership_happened(access, organization, "member.added", membership, {"role": role, **(data or {})})
    return membership
