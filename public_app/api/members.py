"""Settings → Members: members and the organization's invitations."""

from typing import Literal

from ninja import Field, Query, Router, Schema, Status

from public_app import errors
from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.models import Invitation, Membership
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import InvitationCreateIn, InvitationOut, MemberOut, MemberUpdateIn
from public_app.selectors import invitation_list_pending, member_get, member_list
from public_app.services.invitations import invitation_cancel, invitation_create, invitation_resend
from public_app.services.members import (
    membership_change_role,
    membership_deactivate,
    membership_reactivate,
    membership_remove,
)

# Most of Settings → Members needs `members:manage`; listing members and leaving are for every member.
router = Router(tags=["Members"], auth=OrgAuth(Capability.MEMBERS_MANAGE))
any_member = OrgAuth(Capability.ORG_READ)


class RemoveMemberQuery(Schema):
    api_keys_to: str | None = Field(
        None, max_length=40, description="The id of an owner to hand the member's API keys to (owners only)."
    )


class MemberFilters(Schema):
    status: Literal["active", "deactivated"] | None = Field(None, description="Only active or deactivated members.")


def _target_user_id(request: AuthedRequest, user_uid: str) -> int:
    membership = member_get(organization=request.auth.org, user_uid=user_uid)
    if membership is None:
        raise errors.NotFound("Member not found.")
    return membership.user_id


@router.get("/{slug}/members", response=Page[MemberOut], auth=any_member)
def list_members(request: AuthedRequest, slug: str, page: Query[PageQuery], filters: Query[MemberFilters]) -> dict:
    """Members with their role and status, newest first (any member)."""
    return paginate(member_list(organization=request.auth.org, status=filters.status), page)


@router.patch("/{slug}/members/{user_id}", response=MemberOut)
@may_raise("role_escalation", "last_owner", "member_deactivated")
def change_member_role(request: AuthedRequest, slug: str, user_id: str, payload: MemberUpdateIn) -> Membership:
    """Change a member's role (owner, admin). Nobody grants or changes a role above their own; one owner stays."""
    return membership_change_role(access=request.auth, user_id=_target_user_id(request, user_id), role=payload.role)


@router.delete("/{slug}/members/{user_id}", response={204: None}, auth=any_member)
@may_raise("permission_denied", "role_escalation", "last_owner")
def remove_member(request: AuthedRequest, slug: str, user_id: str, filters: Query[RemoveMemberQuery]) -> Status:
    """Remove a member (owner, admin), or leave (any member, with your own id). Access ends with this response, for
    the member's sessions and for the API keys they created in this organization (revoked), unless an owner passes
    `api_keys_to` with the id of another owner, who then holds them."""
    membership_remove(
        access=request.auth,
        user_id=_target_user_id(request, user_id),
        api_keys_to_user_id=_target_user_id(request, filters.api_keys_to) if filters.api_keys_to else None,
    )
    return Status(204, None)


@router.post("/{slug}/members/{user_id}/deactivate", response=MemberOut)
@may_raise("role_escalation", "last_owner")
def deactivate_member(request: AuthedRequest, slug: str, user_id: str) -> Membership:
    """Deactivate a member (owner, admin): access ends with this response (their sessions here; the API keys they
    created here are revoked; invitations they sent are cancelled) and the seat is free, but the membership, its
    role and its history stay. Deactivating a deactivated member changes nothing."""
    return membership_deactivate(access=request.auth, user_id=_target_user_id(request, user_id))


@router.post("/{slug}/members/{user_id}/reactivate", response=MemberOut)
@may_raise("role_escalation", "seat_limit_reached")
def reactivate_member(request: AuthedRequest, slug: str, user_id: str) -> Membership:
    """Give a deactivated member their access back with the role they had (owner, admin), seat permitting."""
    return membership_reactivate(access=request.auth, user_id=_target_user_id(request, user_id))


@router.get("/{slug}/invitations", response=Page[InvitationOut])
def list_invitations(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Pending invitations (owner, admin), newest first."""
    return paginate(invitation_list_pending(organization=request.auth.org), page)


@router.post("/{slug}/invitations", response={201: InvitationOut})
@may_raise("role_escalation", "already_member", "invitation_pending", "seat_limit_reached", "rate_limited")
def create_invitation(request: AuthedRequest, slug: str, payload: InvitationCreateIn) -> Status:
    """Invite someone by email; the email with the link is sent by a job."""
    invitation = invitation_create(
        access=request.auth, email=payload.email, role=payload.role, expires_in_days=payload.expires_in_days
    )
    return Status(201, invitation)


@router.post("/{slug}/invitations/{invitation_id}/resend", response=InvitationOut)
@may_raise("rate_limited", "seat_limit_reached")
def resend_invitation(request: AuthedRequest, slug: str, invitation_id: str) -> Invitation:
    """New token and expiry; the old link stops working and a new email goes out."""
    return invitation_resend(access=request.auth, invitation_uid=invitation_id)


@router.delete("/{slug}/invitations/{invitation_id}", response={204: None})
def cancel_invitation(request: AuthedRequest, slug: str, invitation_id: str) -> Status:
    """Cancel a pending invitation; its link stops working."""
    invitation_cancel(access=request.auth, invitation_uid=invitation_id)
    return Status(204, None)
