"""Join requests: someone asks to join an organization, its owners and admins approve (choosing the role, seats
permitting) or decline, and the requester is emailed either way.

Who may ask: a signed-in user whose verified address is at one of the organization's verified domains, or any
signed-in user with a verified address when the organization opened requests by slug (`join_requests_open`). To
everyone else the organization does not exist (404), as for any organization one is not in. Requests are rate
limited per user and per organization.
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from public_app import errors
from public_app.access import Access, Capability, Roles, roles_of
from public_app.events import Target, happened
from public_app.locks import organization_lock
from public_app.models import (
    JoinRequest,
    JoinRequestStatus,
    Membership,
    Organization,
    OrganizationDomain,
    OrganizationStatus,
    Role,
    User,
)
from public_app.outbox import enqueue
from public_app.ratelimit import ratelimit_check, ratelimit_record
from public_app.services.billing.seats import seat_check
from public_app.services.members import membership_add

DAY = 24 * 3600


def _target(request: JoinRequest) -> Target:
    return Target("join_request", request.uid, request.user.email)


def _event(request: JoinRequest) -> dict:
    return {"id": request.uid, "user": {"id": request.user.uid, "email": request.user.email},
            "status": request.status, "role": request.role or None}  # fmt: skip


def _may_ask(user: User, organization: Organization) -> bool:
    if organization.join_requests_open:
        return True
    domain = user.email.rsplit("@", 1)[-1].lower()
    return OrganizationDomain.objects.filter(organization=organization, domain=domain,
                                             verified_at__isnull=False).exists()  # fmt: skip


@transaction.atomic
def join_request_create(*, user: User, slug: str, message: str = "") -> JoinRequest:
    if user.email_verified_at is None:
        raise errors.PermissionDenied("Confirm your email address first.", code="email_not_verified")
    organization = Organization.objects.filter(slug=slug, status=OrganizationStatus.ACTIVE).first()
    if organization is None or not _may_ask(user, organization):
        raise errors.NotFound("Organization not found.")
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise errors.Conflict("You are a member of this organization already.", code="already_member")
    ratelimit_check(f"jr-user:{user.id}", limit=settings.RATELIMIT_JOIN_REQUESTS_PER_USER_PER_DAY, window=DAY)
    ratelimit_check(f"jr-org:{organization.id}", limit=settings.RATELIMIT_JOIN_REQUESTS_PER_ORG_PER_DAY, window=DAY)
    try:
        with transaction.atomic():
            request = JoinRequest.objects.create(organization=organization, user=user, message=message.strip())
    except IntegrityError:
        raise errors.Conflict("You have asked to join already; wait for an answer.", code="conflict") from None
    ratelimit_record(f"jr-user:{user.id}", window=DAY)
    ratelimit_record(f"jr-org:{organization.id}", window=DAY)
    access = Access.for_user(user, organization=organization, role=None)
    happened(access=access, organization=organization, action="join_request.created", target=_target(request),
             data={"message": request.message}, event=_event(request))  # fmt: skip
    return request


def join_requests_of(*, user_id: int) -> QuerySet[JoinRequest]:
    return JoinRequest.objects.filter(user_id=user_id).select_related("organization", "user")


def join_requests_pending(*, organization: Organization) -> QuerySet[JoinRequest]:
    return JoinRequest.objects.filter(organization=organization, status=JoinRequestStatus.PENDING).select_related(
        "user", "organization")  # fmt: skip


@transaction.atomic
def join_request_cancel(*, user: User, uid: str) -> None:
    request = JoinRequest.objects.select_for_update().filter(user=user, uid=uid).first()
    if request is None:
        raise errors.NotFound("Join request not found.")
    if request.status == JoinRequestStatus.PENDING:
        request.status = JoinRequestStatus.CANCELLED
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "decided_at", "updated_at"])


def _pending_for_decision(access: Access, uid: str) -> JoinRequest:
    if not roles_of(access.org).has(access.role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()
    organization_lock(access.org.id)
    request = (JoinRequest.objects.select_for_update(of=("self",)).select_related("user", "organization")
               .filter(organization=access.org, uid=uid).first())  # fmt: skip
    if request is None:
        raise errors.NotFound("Join request not found.")
    if request.status != JoinRequestStatus.PENDING:
        raise errors.Conflict(f"This request was {request.status} already.", code="conflict")
    return request


def _decided(access: Access, request: JoinRequest, status: str, role: str = "") -> None:
    request.status, request.role, request.decided_at = status, role, timezone.now()
    request.decided_by_id = access.user_id  # None for an API key (the audit log names it)
    request.save(update_fields=["status", "role", "decided_at", "decided_by", "updated_at"])
    happened(access=access, action=f"join_request.{status}", target=_target(request),
             data={"role": role} if role else {}, event=_event(request))  # fmt: skip
    enqueue("send_join_request_email", request.id, organization=access.org)


@transaction.atomic
def join_request_approve(*, access: Access, uid: str, role: str = Role.MEMBER) -> JoinRequest:
    request = _pending_for_decision(access, uid)
    roles = Roles.load(access.org.id)  # under the lock a role's deletion takes
    roles.require(role)
    roles.check_can_act_on(access.role or "", role, role)
    if Membership.objects.filter(organization=access.org, user=request.user).exists():
        raise errors.Conflict("This person is a member already.", code="already_member")
    seat_check(access.org)
    membership_add(organization=access.org, user=request.user, role=role, access=access,
                   data={"via": "join_request"})  # fmt: skip
    _decided(access, request, JoinRequestStatus.APPROVED, role)
    return request


@transaction.atomic
def join_request_decline(*, access: Access, uid: str) -> JoinRequest:
    request = _pending_for_decision(access, uid)
    _decided(access, request, JoinRequestStatus.DECLINED)
    return request
