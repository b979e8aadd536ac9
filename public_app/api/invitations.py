"""The invitee's side: my invitations (by id) and the email link (by token)."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from public_app import errors
from public_app.api.common import AuthedRequest, client_ip, may_raise, request_account, request_user
from public_app.models import Invitation, User
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import InvitationAcceptedOut, InvitationPreviewOut, MyInvitationOut
from public_app.selectors import invitation_get_for_email, invitation_list_for_email
from public_app.services.invitations import (
    invitation_accept,
    invitation_by_token,
    invitation_decline,
    invitation_raise_if_gone,
)
from public_app.services.verification import require_verified_email

router = Router(tags=["Invitation links"])


def _my_invitation(request: AuthedRequest, invitation_id: str) -> tuple[Invitation, User]:
    user = request_user(request)
    invitation = invitation_get_for_email(uid=invitation_id, email=user.email)
    if invitation is None:
        raise errors.NotFound("Invitation not found.")
    return invitation, user


@router.get("/me/invitations", response=Page[MyInvitationOut], tags=["Current user"])
@may_raise("email_not_verified")
def list_my_invitations(request: AuthedRequest, page: Query[PageQuery]) -> dict:
    """Pending invitations addressed to my email (the onboarding path after sign-up or sign-in). Needs a verified
    email (403 `email_not_verified`): an address typed in at sign-up proves nothing."""
    account = request_account(request)
    require_verified_email(account)
    return paginate(invitation_list_for_email(email=account.email), page)


@router.post("/me/invitations/{invitation_id}/accept", response=InvitationAcceptedOut, tags=["Current user"])
@may_raise("not_found", "email_not_verified", "already_member", "seat_limit_reached", "invitation_expired")
def accept_my_invitation(request: AuthedRequest, invitation_id: str) -> Invitation:
    """Accept an invitation addressed to me: I become a member with its role."""
    invitation, user = _my_invitation(request, invitation_id)
    return invitation_accept(invitation_id=invitation.id, user=user, ip=client_ip(request))


@router.post("/me/invitations/{invitation_id}/decline", response={204: None}, tags=["Current user"])
@may_raise("not_found", "email_not_verified")
def decline_my_invitation(request: AuthedRequest, invitation_id: str) -> Status:
    """Decline an invitation addressed to me."""
    invitation, user = _my_invitation(request, invitation_id)
    invitation_decline(invitation_id=invitation.id, user=user, ip=client_ip(request))
    return Status(204, None)


@router.get("/invitations/{token}", response=InvitationPreviewOut, auth=None)
@may_raise(
    "not_found", "invitation_expired", "invitation_used", "invitation_cancelled", "invitation_declined", "rate_limited"
)
def preview_invitation(request: HttpRequest, token: str) -> Invitation:
    """Public preview for the email link: which organization, which role, for which email."""
    invitation = invitation_by_token(token, ip=client_ip(request))
    invitation_raise_if_gone(invitation)
    if not invitation.organization.is_active:
        raise errors.NotFound("Invitation not found.")
    return invitation


@router.post("/invitations/{token}/accept", response=InvitationAcceptedOut)
@may_raise(
    "not_found",
    "invitation_expired",
    "invitation_used",
    "invitation_cancelled",
    "invitation_declined",
    "rate_limited",
    "invitation_email_mismatch",
    "email_not_verified",
    "already_member",
    "seat_limit_reached",
)
def accept_invitation_link(request: AuthedRequest, token: str) -> Invitation:
    """Accept from the email link, signed in with the invited email (403 `invitation_email_mismatch` otherwise);
    holding the emailed link also verifies that email."""
    invitation = invitation_by_token(token, ip=client_ip(request))
    user = request_user(request)
    return invitation_accept(invitation_id=invitation.id, user=user, ip=client_ip(request), by_token=True)
