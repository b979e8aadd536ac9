"""Sign-up, log-in, log-out and the current user (`/auth/...`, `/me/...`)."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from public_app.access import Account
from public_app.api.common import (
    AuthedRequest,
    caller_user_id,
    client_ip,
    may_raise,
    request_account,
    request_user,
)
from public_app.models import User, normalize_email
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import (
    AuthOut,
    LoginIn,
    MyOrganizationOut,
    SignupIn,
    UserOut,
    VerificationSentOut,
    VerifiedOut,
    VerifyEmailIn,
)
from public_app.selectors import organization_list_for_user
from public_app.services.auth import token_issue, token_revoke, user_login, user_signup
from public_app.services.callers import access_from_token
from public_app.services.verification import email_verification_resend, email_verify

router = Router(tags=["Authentication"])


@router.post("/auth/signup", response={201: AuthOut, 202: VerificationSentOut}, auth=None)
@may_raise("email_taken", "rate_limited")
def signup(request: HttpRequest, payload: SignupIn) -> Status:
    """Create an account; returns the user and a bearer token, and emails a link to confirm the address. When the
    address belongs to an account that never confirmed it: 202, no account yet; the link emailed to the address
    creates this one (and retires the other) when followed. A confirmed address: 409 `email_taken`."""
    user, token = user_signup(email=payload.email, password=payload.password, name=payload.name, ip=client_ip(request))
    if user is None:
        return Status(202, {"status": "verification_sent", "email": normalize_email(payload.email)})
    return Status(201, {"user": user, "token": token})


@router.post("/auth/verify-email", response=VerifiedOut, auth=None)
@may_raise("verification_expired", "verification_used", "email_taken", "not_found", "rate_limited")
def verify_email(request: HttpRequest, payload: VerifyEmailIn) -> dict:
    """Follow the link from a verification email. Sent with the account's own bearer token, it confirms the
    address (`token` null: the account has its own). Otherwise, whoever follows it reads the mailbox: `password`
    is required, the account becomes theirs with that password, every earlier session and API key of it ends,
    and a new `token` is returned. Claim links (a sign-up met an unconfirmed account holding the address) work
    the same way."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    caller = access_from_token(raw.strip()) if scheme.lower() == "bearer" and raw.strip() else None
    user, created = email_verify(token=payload.token, ip=client_ip(request), password=payload.password,
                                 name=payload.name,
                                 caller_user_id=caller.user_id if caller and caller.is_user else None)  # fmt: skip
    return {"user": user, "token": token_issue(user=user) if created else None}


@router.post("/auth/verify-email/resend", response={202: None})
@may_raise("rate_limited")
def resend_verification(request: AuthedRequest) -> Status:
    """Email a new confirmation link to my address (nothing happens when it is already confirmed)."""
    email_verification_resend(user=request_user(request))
    return Status(202, None)


@router.post("/auth/login", response=AuthOut, auth=None)
@may_raise("invalid_credentials", "rate_limited")
def login(request: HttpRequest, payload: LoginIn) -> dict:
    """Exchange email and password for a new bearer token."""
    user, token = user_login(email=payload.email, password=payload.password, ip=client_ip(request))
    return {"user": user, "token": token}


@router.post("/auth/logout", response={204: None})
def logout(request: AuthedRequest) -> Status:
    """Revoke the token used for this request (other tokens of the user keep working)."""
    if request.auth.token_id is not None:
        token_revoke(token_id=request.auth.token_id)
    return Status(204, None)


@router.get("/me", response=UserOut, tags=["Current user"])
def get_me(request: AuthedRequest) -> Account | User:
    """The signed-in user."""
    return request_account(request)


@router.get("/me/organizations", response=Page[MyOrganizationOut], tags=["Current user"])
def list_my_organizations(request: AuthedRequest, page: Query[PageQuery]) -> dict:
    """The organization switcher: every organization I belong to, with my role, its status and logo, most
    recently used first. Switching needs no new sign-in: the same token works in all of them."""
    return paginate(organization_list_for_user(user_id=caller_user_id(request)), page, order_by="last_accessed_at")
