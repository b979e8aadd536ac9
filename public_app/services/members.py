"""Membership rules: change role, remove, leave. Hierarchy and last-owner rules live here, under a lock on the
organization row so concurrent changes (two owners demoting each other) are serialized and re-checked."""

from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Actor, Capability, role_check_can_act_on, role_has
from public_app.cache import cache_add_or_false
from public_app.locks import organization_lock
from public_app.models import Membership, Organization, Role, User
from public_app.services.api_keys import api_keys_beyond_role_revoke
from public_app.services.events import membership_changed
from tenant_apps.audit.services import audit_record


def _membership_of(organization: Organization, user_id: int) -> Membership:
    membership = Membership.objects.select_related("user").filter(organization=organization, user_id=user_id).first()
    if membership is None:
        raise errors.NotFound("Member not found.")
    return membership


def _other_owners(organization: Organization, user_id: int) -> int:
    return Membership.objects.filter(organization=organization, role=Role.OWNER).exclude(user_id=user_id).count()


def _current_actor_role(organization: Organization, actor_user_id: int | None, actor_role: str) -> str:
    """A user's role is re-read under the organization lock (it may have changed since the request was
    authorized: two owners demoting each other); an API key's role is fixed."""
    if actor_user_id is None:
        return actor_role
    return _membership_of(organization, actor_user_id).role


def _member_target(membership: Membership) -> dict:
    return {"target_type": "user", "target_id": membership.user.uid, "target_label": membership.user.email}


@transaction.atomic
def membership_change_role(
    *,
    organization: Organization,
    actor: Actor,
    actor_user_id: int | None,
    actor_role: str,
    user_id: int,
    role: str,
) -> Membership:
    if role not in Role.values:
        raise errors.ValidationFailed.for_field("role", f"Role must be one of {', '.join(Role.values)}.")
    organization_lock(organization.id)
    current_role = _current_actor_role(organization, actor_user_id, actor_role)
    if not role_has(current_role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()
    membership = _membership_of(organization, user_id)
    if membership.role == role:
        return membership
    role_check_can_act_on(current_role, membership.role, role)
    if membership.role == Role.OWNER and _other_owners(organization, user_id) == 0:
        raise errors.PermissionDenied("An organization must keep at least one owner.", code="last_owner")
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        organization=organization,
        actor=actor,
        action="member.role_changed",
        data={"from": previous, "to": role},
        **_member_target(membership),
    )
    api_keys_beyond_role_revoke(organization=organization, actor=actor, user_id=user_id, role=role)
    invitations_beyond_role_cancel(organization=organization, actor=actor, user_id=user_id, role=role)
    membership_changed(organization=organization, event="member.role_changed", membership=membership)
    return membership


@transaction.atomic
def membership_remove(
    *,
    organization: Organization,
    actor: Actor,
    actor_user_id: int | None,
    actor_role: str,
    user_id: int,
    api_keys_to_user_id: int | None = None,
) -> None:
    """Remove a member, or leave (`user_id` is the actor's own). Access ends when this commits, for the member's
    tokens and for the API keys they created here: those are revoked, unless an owner hands them to an owner
    (`api_keys_to_user_id`)."""
    from public_app.services.api_keys import api_keys_of_departing_member

    organization_lock(organization.id)
    current_role = _current_actor_role(organization, actor_user_id, actor_role)
    membership = _membership_of(organization, user_id)
    if api_keys_to_user_id is not None:
        if current_role != Role.OWNER:
            raise errors.PermissionDenied("Only an owner can keep a departing member's API keys alive.")
        if not Membership.objects.filter(organization=organization, user_id=api_keys_to_user_id,
                                         role=Role.OWNER).exclude(user_id=user_id).exists():  # fmt: skip
            raise errors.ValidationFailed.for_field("api_keys_to", "API keys can only be handed to another owner.")
    leaving = actor_user_id == user_id
    if not leaving:
        if not role_has(current_role, Capability.MEMBERS_MANAGE):
            raise errors.PermissionDenied()
        role_check_can_act_on(current_role, membership.role)
    if membership.role == Role.OWNER and _other_owners(organization, user_id) == 0:
        raise errors.PermissionDenied("An organization must keep at least one owner.", code="last_owner")
    membership.delete()
    api_keys_of_departing_member(organization=organization, actor=actor, user_id=user_id,
                                 hand_to_user_id=api_keys_to_user_id)  # fmt: skip
    invitations_beyond_role_cancel(organization=organization, actor=actor, user_id=user_id, role=None)
    audit_record(
        organization=organization,
        actor=actor,
        action="member.removed",
        data={"role": membership.role, "left": leaving},
        **_member_target(membership),
    )
    membership_changed(organization=organization, event="member.removed", membership=membership)


def invitations_beyond_role_cancel(
    *, organization: Organization | None, actor: Actor, user_id: int, role: str | None, reason: str = ""
) -> int:
    """The pending invitations a member sent (themselves or with an API key they answer for) that they could not
    send now end with the change: all of them when they leave (`role` None), those above what the new role may
    grant when demoted. An invitation is a way in, like an API key: a departing admin must not leave one for an
    address of theirs. `organization` None: in every organization (an account handed to its mailbox's reader)."""
    from django.db.models import Q

    from public_app.models import Invitation, InvitationStatus

    def still_allowed(invited_role: str) -> bool:
        if role is None or not role_has(role, Capability.MEMBERS_MANAGE):
            return False
        try:
            role_check_can_act_on(role, invited_role, invited_role)
        except errors.PermissionDenied:
            return False
        return True

    pending = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(Q(sent_by_id=user_id) | Q(invited_by_id=user_id), status=InvitationStatus.PENDING)
    )
    if organization is not None:
        pending = pending.filter(organization=organization)
    cancelled = 0
    for invitation in pending:
        if still_allowed(invitation.role):
            continue
        invitation.status = InvitationStatus.CANCELLED
        invitation.responded_at = timezone.now()
        invitation.save(update_fields=["status", "responded_at", "updated_at"])
        audit_record(organization=invitation.organization, actor=actor, action="invitation.cancelled",
                     data={"reason": reason or ("inviter_removed" if role is None else "inviter_role_changed")},
                     target_type="invitation", target_id=invitation.uid, target_label=invitation.email)  # fmt: skip
        cancelled += 1
    return cancelled


def membership_add(*, organization: Organization, user: User, role: str, actor: Actor) -> Membership:
    """Add a member (from an accepted invitation). Call inside the caller's transaction."""
    membership = Membership.objects.create(organization=organization, user=user, role=role)
    audit_record(
        organization=organization, actor=actor, action="member.added", data={"role": role}, **_member_target(membership)
    )
    membership_changed(organization=organization, event="member.added", membership=membership)
    return membership


def membership_touch(*, organization_id: int, user_id: int) -> None:
    """Record that the user used this organization (the switcher's order), at most once a minute."""
    if cache_add_or_false(f"membership-touch:{organization_id}:{user_id}", 60):  # skipped while the cache is down
        Membership.objects.filter(organization_id=organization_id, user_id=user_id).update(
            last_accessed_at=timezone.now()
        )
