"""Hosted pages (issue 22, first part): what a person needs with nothing else deployed — sign up, sign in, sign out,
the emailed verification and invitation links, the onboarding step (pending invitations, a first organization), the
organization switcher and each organization's dashboard. Server-rendered Django templates with session cookies
(CSRF-protected; Secure in production), calling the same services and rules as the API; no JavaScript needed.
`FRONTEND_URL` points the emailed links here unless an external front end takes over.
"""

from typing import Any

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from public_app import errors
from public_app.access import Access, Capability, roles_of
from public_app.models import Membership, User
from public_app.selectors import invitation_list_for_email, organization_list_for_user
from public_app.services.auth import user_login, user_signup
from public_app.services.invitations import invitation_accept, invitation_by_token, invitation_decline
from public_app.services.organizations import organization_create
from public_app.services.verification import email_verify

BACKEND = "django.contrib.auth.backends.ModelBackend"


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    return target if url_has_allowed_host_and_scheme(target, allowed_hosts=None) and target.startswith("/") else default


def _user(request: HttpRequest) -> User | None:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _page(request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    return render(request, f"pages/{template}.html", {"viewer": _user(request), **context}, status=status)


def _problem(request: HttpRequest, exc: errors.ApplicationError, **context: Any) -> HttpResponse:
    status = exc.status if 400 <= exc.status < 600 else 400
    return _page(request, "problem", status=status, message=exc.message, code=exc.code, **context)


def _sign_in_first(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(f"/signin?next={request.get_full_path()}")


@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if user is None:
        return HttpResponseRedirect("/signin")
    latest = organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id").first()
    return HttpResponseRedirect(f"/organizations/{latest.organization.slug}/" if latest else "/welcome")


@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            user, _ = user_login(email=request.POST.get("email", ""), password=request.POST.get("password", ""),
                                 ip=_ip(request))  # fmt: skip
        except errors.ApplicationError as exc:
            return _page(request, "signin", status=exc.status, error=exc.message, email=request.POST.get("email", ""),
                         next=_next(request))  # fmt: skip
        login(request, user, backend=BACKEND)
        return HttpResponseRedirect(_next(request))
    return _page(request, "signin", email=request.GET.get("email", ""), next=_next(request))


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        email = request.POST.get("email", "")
        try:
            name = request.POST.get("name", "") or email.split("@")[0]
            user, _ = user_signup(email=email, password=request.POST.get("password", ""), name=name, ip=_ip(request))
        except errors.ApplicationError as exc:
            messages = [d["message"] for d in exc.details or [] if isinstance(d, dict)] or [exc.message]
            return _page(request, "signup", status=exc.status, errors=messages, email=email,
                         name=request.POST.get("name", ""), next=_next(request))  # fmt: skip
        if user is None:  # an unconfirmed account holds the address: a claim link went to it
            return _page(request, "check_inbox", email=email, claim=True)
        login(request, user, backend=BACKEND)
        return HttpResponseRedirect(_next(request))
    return _page(request, "signup", email=request.GET.get("email", ""), next=_next(request))


@require_http_methods(["POST"])
def signout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponseRedirect("/signin")


@require_http_methods(["GET", "POST"])
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """Followed signed in as the account: it is confirmed. Anyone else reading the mailbox chooses a password, and
    the account is theirs (public_app.services.verification.email_verify)."""
    user = _user(request)
    if request.method == "GET" and user is None:
        return _page(request, "claim", token=token)
    try:
        verified, _ = email_verify(token=token, ip=_ip(request), caller_user_id=user.id if user else None,
                                   password=request.POST.get("password") or None,
                                   name=request.POST.get("name") or None)  # fmt: skip
    except errors.ApplicationError as exc:
        if exc.status == 422:
            return _page(request, "claim", status=422, token=token, error=exc.message)
        return _problem(request, exc)
    login(request, verified, backend=BACKEND)
    return _page(request, "verified")


def _invitation(request: HttpRequest, token: str) -> Any:
    invitation = invitation_by_token(token, ip=_ip(request))
    if not invitation.organization.is_active:
        raise errors.NotFound("Invitation not found.")
    return invitation


@require_http_methods(["GET"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: who invites you where, with which role; then sign in or up with that address, and accept."""
    try:
        found = _invitation(request, token)
    except errors.ApplicationError as exc:
        return _problem(request, exc, title="This invitation link does not work")
    gone = None
    try:
        from public_app.services.invitations import invitation_raise_if_gone

        invitation_raise_if_gone(found)
    except errors.Gone as exc:
        gone = exc
    if gone is not None:
        return _problem(request, gone, title="This invitation can no longer be used", organization=found.organization)
    user = _user(request)
    wrong = user is not None and user.email != found.email
    return _page(request, "invitation", invitation=found, token=token, wrong_account=wrong)


@require_http_methods(["POST"])
def invitation_answer(request: HttpRequest, token: str, answer: str) -> HttpResponse:
    user = _user(request)
    if answer not in ("accept", "decline"):
        return _problem(request, errors.NotFound("Not found."), title="Not found")
    if user is None:
        return _sign_in_first(request)
    try:
        found = _invitation(request, token)
        if answer == "accept":
            accepted = invitation_accept(invitation_id=found.id, user=user, ip=_ip(request), by_token=True)
            return HttpResponseRedirect(f"/organizations/{accepted.organization.slug}/")
        invitation_decline(invitation_id=found.id, user=user, ip=_ip(request))
    except errors.ApplicationError as exc:
        return _problem(request, exc, title="The invitation could not be answered")
    return HttpResponseRedirect("/welcome")


@require_http_methods(["GET", "POST"])
def welcome(request: HttpRequest) -> HttpResponse:
    """Onboarding: the invitations waiting for your (verified) address, and your first organization."""
    user = _user(request)
    if user is None:
        return _sign_in_first(request)
    error, name, slug = None, "", ""
    if request.method == "POST":
        name, slug = request.POST.get("name", ""), request.POST.get("slug", "")
        try:
            organization = organization_create(user=user, name=name, slug=slug)
            return HttpResponseRedirect(f"/organizations/{organization.slug}/")
        except errors.ApplicationError as exc:
            messages = [d["message"] for d in exc.details or [] if isinstance(d, dict)] or [exc.message]
            error = " ".join(messages)
    pending = list(invitation_list_for_email(email=user.email)) if user.email_verified_at else []
    return _page(request, "welcome", status=422 if error else 200, pending=pending, error=error, name=name, slug=slug,
                 memberships=organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id"))


def _org_access(request: HttpRequest, user: User, slug: str, capability: Any, *, write: bool = False) -> Access:
    """The viewer within the organization `slug` names, by the API's own rule (public_app.access.org_access_check):
    not a member (or a directory membership of an unverified address) is 404, a role without the capability 403,
    a read-only organization refuses writes."""
    from public_app.access import org_access_check
    from public_app.selectors import membership_role_load, organization_load

    organization = organization_load(slug=slug)
    role = membership_role_load(organization_id=organization.id, user_id=user.id) if organization else None
    caller = Access.for_user(user, ip=_ip(request))
    return org_access_check(caller, slug, organization, role, capability, require_active=False, write=write)


def _grantable(organization: Any, role: str) -> list[str]:
    """The roles the viewer may invite with (built-in, then custom), as the service will check them."""
    from public_app.access import ROLE_CAPABILITIES

    roles = roles_of(organization)
    return [key for key in [*ROLE_CAPABILITIES, *sorted(roles.custom)] if roles.may_grant(role, key)]


@require_http_methods(["GET"])
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    """An organization's dashboard, with the switcher (most recently used first; switching keeps you signed in)."""
    from django.utils import timezone

    user = _user(request)
    if user is None:
        return _sign_in_first(request)
    try:
        access = _org_access(request, user, slug, Capability.ORG_READ)
    except errors.ApplicationError as exc:
        return _problem(request, exc, title="Not found" if exc.status == 404 else "Not available")
    organization, role = access.org, access.role or ""
    Membership.objects.filter(organization=organization, user=user).update(last_accessed_at=timezone.now())
    members = Membership.objects.filter(organization=organization).select_related("user").order_by("id")
    return _page(request, "dashboard", organization=organization, role=role,
                 may_invite=access.can(Capability.MEMBERS_MANAGE), invited=request.GET.get("invited", ""),
                 grantable=_grantable(organization, role), members=members[:50],
                 switcher=organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id"))


@require_http_methods(["POST"])
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    """Invite a colleague from the dashboard: the same service and rules as `POST …/invitations` (owners and admins;
    anyone else is refused here as there)."""
    from public_app.services.invitations import invitation_create

    user = _user(request)
    if user is None:
        return _sign_in_first(request)
    try:
        access = _org_access(request, user, slug, Capability.MEMBERS_MANAGE, write=True)
        invitation_create(access=access, email=request.POST.get("email", ""), role=request.POST.get("role", "member"))
    except errors.ApplicationError as exc:
        return _problem(request, exc, title="The invitation was not sent" if exc.status != 404 else "Not found")
    return HttpResponseRedirect(f"/organizations/{slug}/?invited={request.POST.get('email', '')}")


TABS = ("general", "members", "billing", "developers", "leadsforce")


@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest, slug: str, tab: str = "general", new_key: dict | None = None) -> HttpResponse:
    """Settings → Organization. General (owners and admins change it; everyone sees it) and Members (everyone sees
    the members; owners and admins invite, change roles, remove, resend and cancel invitations). The other tabs
    (Billing, Leadsforce) point to the API for now; Developers lists, creates (shown once) and revokes API keys and
    lists the webhook endpoints (owners and admins). What the viewer's role does not allow is not shown,
    and refused if submitted anyway (the services decide, as on the API)."""
    from public_app.selectors import api_key_list, invitation_list_pending, member_list

    user = _user(request)
    if user is None:
        return _sign_in_first(request)
    if tab not in TABS:
        return _problem(request, errors.NotFound("Not found."), title="Not found")
    try:
        access = _org_access(request, user, slug, Capability.ORG_READ)
        if request.method == "POST":
            return _settings_submit(request, user, slug, tab)
    except errors.ApplicationError as exc:
        return _problem(request, exc, title="Not found" if exc.status == 404 else "Not allowed")
    organization, role = access.org, access.role or ""
    may_manage, may_develop = access.can(Capability.MEMBERS_MANAGE), access.can(Capability.DEVELOPERS)
    keys, webhooks = [], []
    if tab == "developers" and may_develop:
        from public_app.tenancy import tenant_context
        from tenant_apps.webhooks.models import WebhookEndpoint

        keys = list(api_key_list(organization=organization).order_by("-id")[:200])
        with tenant_context(organization):
            webhooks = list(WebhookEndpoint.objects.order_by("-id").values("uid", "url", "events", "enabled")[:200])
    return _page(request, "settings", organization=organization, role=role, tab=tab, tabs=TABS,
                 may_develop=may_develop, keys=keys, webhooks=webhooks, new_key=new_key,
                 key_roles=[r for r in _grantable(organization, role) if r not in ("owner", "billing")],
                 may_update=access.can(Capability.ORG_UPDATE), may_manage=may_manage,
                 members=member_list(organization=organization).order_by("id")[:200],
                 pending=invitation_list_pending(organization=organization)[:200] if may_manage else [],
                 grantable=_grantable(organization, role), done=request.GET.get("done", ""))


def _settings_submit(request: HttpRequest, user: User, slug: str, tab: str) -> HttpResponse:
    """One form of the settings page: the same services as the API, with the capability they need."""
    from public_app.selectors import member_get
    from public_app.services.api_keys import api_key_create, api_key_revoke
    from public_app.services.invitations import invitation_cancel, invitation_resend
    from public_app.services.members import membership_change_role, membership_remove
    from public_app.services.organizations import organization_update

    action = request.POST.get("action", "")
    target = request.POST.get("target", "")
    if action == "general":
        access = _org_access(request, user, slug, Capability.ORG_UPDATE, write=True)
        changes = {field: request.POST[field] for field in ("name", "slug", "website", "billing_email", "timezone")
                   if field in request.POST}  # fmt: skip
        organization = organization_update(access=access, changes=changes)
        return HttpResponseRedirect(f"/organizations/{organization.slug}/settings/general?done=saved")
    if action in ("key_create", "key_revoke"):
        access = _org_access(request, user, slug, Capability.DEVELOPERS, write=True)
        if action == "key_revoke":
            api_key_revoke(access=access, key_uid=target)
            return HttpResponseRedirect(f"/organizations/{slug}/settings/developers?done=revoked")
        key, raw = api_key_create(access=access, name=request.POST.get("name", "").strip() or "API key",
                                  role=request.POST.get("role", "member"))  # fmt: skip
        request.method = "GET"  # the secret is shown in this answer only, never put in a URL
        return settings_page(request, slug, "developers", new_key={"name": key.name, "key": raw})
    access = _org_access(request, user, slug, Capability.MEMBERS_MANAGE, write=True)
    if action in ("role", "remove"):
        membership = member_get(organization=access.org, user_uid=target)
        if membership is None:
            raise errors.NotFound("Member not found.")
        if action == "role":
            membership_change_role(access=access, user_id=membership.user_id, role=request.POST.get("role", ""))
        else:
            membership_remove(access=access, user_id=membership.user_id)
    elif action == "resend":
        invitation_resend(access=access, invitation_uid=target)
    elif action == "cancel":
        invitation_cancel(access=access, invitation_uid=target)
    else:
        raise errors.BadRequest("Unknown action.")
    return HttpResponseRedirect(f"/organizations/{slug}/settings/members?done={action}")


urlpatterns = [
    path("", home),
    path("signin", signin),
    path("signup", signup),
    path("signout", signout),
    path("welcome", welcome),
    path("verify-email/<str:token>", verify_email),
    path("invitations/<str:token>", invitation),
    path("invitations/<str:token>/<str:answer>", invitation_answer),
    path("organizations/<slug:slug>/", dashboard),
    path("organizations/<slug:slug>/invitations", invite),
    path("organizations/<slug:slug>/settings", settings_page),
    path("organizations/<slug:slug>/settings/<str:tab>", settings_page),
]
