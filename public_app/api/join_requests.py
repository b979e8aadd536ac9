"""Join requests: asked by a signed-in user (`/me/join-requests`), answered in Settings → Members."""

from ninja import Query, Router, Status

from public_app.access import Capability
from public_app.api.common import AuthedRequest, caller_user_id, may_raise, request_user
from public_app.api.security import OrgAuth
from public_app.models import JoinRequest
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import JoinRequestApproveIn, JoinRequestIn, JoinRequestOut
from public_app.services.join_requests import (
    join_request_approve,
    join_request_cancel,
    join_request_create,
    join_request_decline,
    join_requests_of,
    join_requests_pending,
)

router = Router(tags=["Members"], auth=OrgAuth(Capability.MEMBERS_MANAGE))
me_router = Router(tags=["Current user"])


@me_router.post("/me/join-requests", response={201: JoinRequestOut})
@may_raise("email_not_verified", "not_found", "already_member", "conflict", "rate_limited")
def create_join_request(request: AuthedRequest, payload: JoinRequestIn) -> Status:
    """Ask to join an organization: one whose verified domain is your verified address's, or one that takes
    requests by slug. Anything else is 404, as for any organization you are not in."""
    return Status(201, join_request_create(user=request_user(request), slug=payload.organization,
                                           message=payload.message))  # fmt: skip


@me_router.get("/me/join-requests", response=Page[JoinRequestOut])
def list_my_join_requests(request: AuthedRequest, page: Query[PageQuery]) -> dict:
    """My join requests and their answers, newest first."""
    return paginate(join_requests_of(user_id=caller_user_id(request)), page)


@me_router.delete("/me/join-requests/{join_request_id}", response={204: None})
@may_raise("not_found")
def cancel_join_request(request: AuthedRequest, join_request_id: str) -> Status:
    """Withdraw a pending request (an answered one stays as it is)."""
    join_request_cancel(user=request_user(request), uid=join_request_id)
    return Status(204, None)


@router.get("/{slug}/join-requests", response=Page[JoinRequestOut])
def list_join_requests(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Pending join requests (owner, admin), newest first."""
    return paginate(join_requests_pending(organization=request.auth.org), page)


@router.post("/{slug}/join-requests/{join_request_id}/approve", response=JoinRequestOut)
@may_raise("role_escalation", "seat_limit_reached", "already_member", "conflict")
def approve_join_request(
    request: AuthedRequest, slug: str, join_request_id: str, payload: JoinRequestApproveIn
) -> JoinRequest:
    """Approve with a role (member by default; not above your own): the requester becomes a member and is
    emailed."""
    return join_request_approve(access=request.auth, uid=join_request_id, role=payload.role)


@router.post("/{slug}/join-requests/{join_request_id}/decline", response=JoinRequestOut)
@may_raise("conflict")
def decline_join_request(request: AuthedRequest, slug: str, join_request_id: str) -> JoinRequest:
    """Decline: the requester is emailed; they may ask again later."""
    return join_request_decline(access=request.auth, uid=join_request_id)
