"""Settings → Members: members and the organization's invitations."""

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from public_app import errors
from public_app.access import Capability
from public_app.api.common import request_actor, request_user_or_none
from public_app.api.security import OrgAuth
from public_app.models import Invitation, InvitationStatus, Membership
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import InvitationCreateIn, InvitationOut, MemberOut, MemberUpdateIn
from public_app.selectors import invitation_list_pending, member_get, member_list
from public_app.services.invitations import invitation_cancel, invitation_create, invitation_resend
from public_app.services.members import membership_change_role, membership_remove

router = Router(tags=["members"])
read = OrgAuth(Capability.ORG_READ)
manage = OrgAuth(Capability.MEMBERS_MANAGE)


def member_out(membership: Membership) -> dict:
    user = membership.user
    return {
        "user": {"id": user.uid, "email": user.email, "name": user.name},
        "role": membership.role,
        "joined_at": membership.created_at,
    }


def inviter_out(invitation: Invitation) -> dict | None:
    inviter = invitation.invited_by
    if inviter is None:
        return None
    return {"id": inviter.uid, "name": inviter.name, "email": inviter.email}


def invitation_out(invitation: Invitation) -> dict:
    status = invitation.status
    if status == InvitationStatus.PENDING and invitation.expires_at <= timezone.now():
        status = InvitationStatus.EXPIRED
    return {
        "id": invitation.uid,
        "email": invitation.email,
        "role": invitation.role,
        "status": status,
        "invited_by": inviter_out(invitation),
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
    }


class RemoveMemberQuery(Schema):
    api_keys_to: str | None = Field(
        None, max_length=40, description="The id of an owner to hand the member's API keys to (owners only)."
    )


def _target_user_id(request: HttpRequest, user_uid: str) -> int:
    membership = member_get(organization=request.org.organization, user_uid=user_uid)
    if membership is None:
        raise errors.NotFound("Member not found.")
    return membership.user_id


@router.get("/{slug}/members", response=Page[MemberOut], auth=read)
def list_members(request: HttpRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Members with their role, newest first (any member)."""
    return paginate(member_list(organization=request.org.organization), page, member_out)


@router.patch("/{slug}/members/{user_id}", response=MemberOut, auth=manage)
def change_member_role(request: HttpRequest, slug: str, user_id: str, payload: MemberUpdateIn) -> dict:
    """Change a member's role (owner, admin). Nobody grants or changes a role above their own; one owner stays."""
    membership = membership_change_role(
        organization=request.org.organization,
        actor=request_actor(request),
        actor_user_id=request.auth.user_id,
        actor_role=request.org.role,
        user_id=_target_user_id(request, user_id),
        role=payload.role,
    )
    return member_out(membership)


@router.delete("/{slug}/members/{user_id}", response={204: None}, auth=read)
def remove_member(request: HttpRequest, slug: str, user_id: str, filters: Query[RemoveMemberQuery]) -> Status:
    """Remove a member (owner, admin), or leave (any member, with your own id). Access ends with this response, for
    the member's sessions and for the API keys they created in this organization (revoked), unless an owner passes
    `api_keys_to` with the id of another owner, who then holds them."""
    membership_remove(
        organization=request.org.organization,
        actor=request_actor(request),
        actor_user_id=request.auth.user_id,
        actor_role=request.org.role,
        user_id=_target_user_id(request, user_id),
        api_keys_to_user_id=_target_user_id(request, filters.api_keys_to) if filters.api_keys_to else None,
    )
    return Status(204, None)


@router.get("/{slug}/invitations", response=Page[InvitationOut], auth=manage)
def list_invitations(request: HttpRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Pending invitations (owner, admin), newest first."""
    return paginate(invitation_list_pending(organization=request.org.organization), page, invitation_out)


@router.post("/{slug}/invitations", response={201: InvitationOut}, auth=manage)
def create_invitation(request: HttpRequest, slug: str, payload: InvitationCreateIn) -> Status:
    """Invite someone by email; the email with the link is sent by a job."""
    user = request_user_or_none(request)
    invitation = invitation_create(
        organization=request.org.organization,
        actor=request_actor(request, user),
        actor_role=request.org.role,
        invited_by=user,
        email=payload.email,
        role=payload.role,
        expires_in_days=payload.expires_in_days,
        invited_by_key_id=None if request.auth.is_user else request.auth.api_key_id,  # type: ignore[attr-defined]
        caller_token_id=request.auth.token_id if request.auth.is_user else None,  # type: ignore[attr-defined]
    )
    return Status(201, invitation_out(invitation))


@router.post("/{slug}/invitations/{invitation_id}/resend", response=InvitationOut, auth=manage)
def resend_invitation(request: HttpRequest, slug: str, invitation_id: str) -> dict:
    """New token and expiry; the old link stops working and a new email goes out."""
    invitation = invitation_resend(
        organization=request.org.organization,
        actor=request_actor(request),
        actor_role=request.org.role,
        invitation_uid=invitation_id,
    )
    return invitation_out(invitation)


@router.delete("/{slug}/invitations/{invitation_id}", response={204: None}, auth=manage)
def cancel_invitation(request: HttpRequest, slug: str, invitation_id: str) -> Status:
    """Cancel a pending invitation; its link stops working."""
    invitation_cancel(
        organization=request.org.organization,
        actor=request_actor(request),
        actor_role=request.org.role,
        invitation_uid=invitation_id,
    )
    return Status(204, None)
