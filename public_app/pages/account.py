"""The pages of a person before any organization: sign up, sign in, sign out, the emailed verification and
invitation links, and onboarding (pending invitations, a first organization with a suggested slug, then a plan when
billing is on)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import urlencode

from public_app import errors
from public_app.fields import Name, OptionalName
from public_app.models import Invitation, User
from public_app.pages.common import (
    BACKEND,
    client_ip,
    form_value,
    messages_of,
    methods,
    next_path,
    page,
    problem,
    sign_in_first,
    signed_in,
    viewer,
)
from public_app.selectors import invitation_get_for_email, invitation_list_for_email, organization_list_for_user
from public_app.services.auth import user_login, user_signup
from public_app.services.invitations import (
    invitation_accept,
    invitation_by_token,
    invitation_decline,
    invitation_raise_if_gone,
)
from public_app.services.organizations import organization_create, slug_suggest
from public_app.services.verification import email_verification_resend, email_verify


@methods("GET", "HEAD")
def home(request: HttpRequest) -> HttpResponse:
    user = viewer(request)
    if user is None:
        return HttpResponseRedirect("/signin")
    latest = organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id").first()
    return HttpResponseRedirect(f"/organizations/{latest.organization.slug}/" if latest else "/welcome")


@methods("GET", "HEAD", "POST")
def signin(request: HttpRequest) -> HttpResponse:
    if request.method != "POST" and viewer(request) is not None:
        return HttpResponseRedirect(next_path(request))  # already signed in
    if request.method == "POST":
        try:
            user, _ = user_login(email=request.POST.get("email", ""), password=request.POST.get("password", ""),
                                 ip=client_ip(request))  # fmt: skip
        except errors.ApplicationError as exc:
            return page(request, "signin", status=exc.status, error=exc.message, email=request.POST.get("email", ""),
                        next=next_path(request))  # fmt: skip
        login(request, user, backend=BACKEND)
        return HttpResponseRedirect(next_path(request))
    return page(request, "signin", email=request.GET.get("email", ""), next=next_path(request))


@methods("GET", "HEAD", "POST")
def signup(request: HttpRequest) -> HttpResponse:
    if request.method != "POST" and viewer(request) is not None:
        return HttpResponseRedirect(next_path(request))  # already signed in
    if request.method == "POST":
        email = request.POST.get("email", "")
        try:
            name = form_value(request, "name", OptionalName).strip() or email.split("@")[0][:200]
            user, _ = user_signup(email=email, password=request.POST.get("password", ""), name=name,
                                  ip=client_ip(request))  # fmt: skip
        except errors.ApplicationError as exc:
            return page(request, "signup", status=exc.status, errors=messages_of(exc), email=email,
                        name=request.POST.get("name", ""), next=next_path(request))  # fmt: skip
        if user is None:  # an unconfirmed account holds the address: a claim link went to it
            return page(request, "check_inbox", email=email, claim=True)
        login(request, user, backend=BACKEND)
        return HttpResponseRedirect(next_path(request))
    return page(request, "signup", email=request.GET.get("email", ""), next=next_path(request))


@methods("POST")
def signout(request: HttpRequest) -> HttpResponse:
    logout(request)
    then = next_path(request, default="")
    return HttpResponseRedirect(f"/signin?{urlencode({'next': then})}" if then else "/signin")


@methods("GET", "POST")  # no HEAD: a GET signed in confirms the address
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """Followed signed in as the account: it is confirmed. Anyone else reading the mailbox chooses a password, and
    the account is theirs (public_app.services.verification.email_verify)."""
    user = viewer(request)
    if request.method == "GET" and user is None:
        return page(request, "claim", token=token)
    try:
        verified, handed_over = email_verify(
            token=token, ip=client_ip(request), caller_user_id=user.id if user else None,
            password=request.POST.get("password") or None, name=request.POST.get("name") or None,
        )  # fmt: skip
    except errors.ApplicationError as exc:
        if exc.status == 422:
            return page(request, "claim", status=422, token=token, error=exc.message)
        return problem(request, exc)
    if handed_over:  # the reader of the mailbox chose the password here: the account is theirs, signed in
        login(request, verified, backend=BACKEND)
    # Otherwise the address was confirmed (by its own account, or already): a link alone signs nobody in, and
    # never swaps the session of whoever followed it (as the API gives no token then).
    return page(request, "verified", signed_in_as_it=bool(user and user.id == verified.id) or handed_over)


def _invitation_by_link(request: HttpRequest, token: str) -> Invitation:
    invitation = invitation_by_token(token, ip=client_ip(request))
    if not invitation.organization.is_active:
        raise errors.NotFound("Invitation not found.")
    return invitation


@methods("GET", "HEAD")
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: who invites you where, with which role; then sign in or up with that address, and accept."""
    try:
        found = _invitation_by_link(request, token)
    except errors.ApplicationError as exc:
        return problem(request, exc, title="This invitation link does not work")
    try:
        invitation_raise_if_gone(found)
    except errors.Gone as exc:
        return problem(request, exc, title="This invitation can no longer be used", organization=found.organization)
    user = viewer(request)
    wrong = user is not None and user.email != found.email
    return page(request, "invitation", invitation=found, token=token, wrong_account=wrong)


@methods("POST")
def invitation_answer(request: HttpRequest, token: str, answer: str) -> HttpResponse:
    user = viewer(request)
    if answer not in ("accept", "decline"):
        return problem(request, errors.NotFound("Not found."))
    if user is None:
        return sign_in_first(request, then=f"/invitations/{token}")
    try:
        found = _invitation_by_link(request, token)
        if answer == "accept":
            accepted = invitation_accept(invitation_id=found.id, user=user, ip=client_ip(request), by_token=True)
            return HttpResponseRedirect(f"/organizations/{accepted.organization.slug}/")
        invitation_decline(invitation_id=found.id, user=user, ip=client_ip(request))
    except errors.ApplicationError as exc:
        return problem(request, exc, title="The invitation could not be answered")
    return HttpResponseRedirect("/welcome")


@methods("POST")
@signed_in
def pending_answer(request: HttpRequest, user: User, uid: str, answer: str) -> HttpResponse:
    """Onboarding's Pending invitations step: accept or decline one addressed to the viewer's verified address, as
    `POST /me/invitations/{id}/accept|decline` does."""
    if answer not in ("accept", "decline"):
        return problem(request, errors.NotFound("Not found."))
    try:
        found = invitation_get_for_email(uid=uid, email=user.email)
        if found is None:
            raise errors.NotFound("Invitation not found.")
        if answer == "accept":
            accepted = invitation_accept(invitation_id=found.id, user=user, ip=client_ip(request))
            return HttpResponseRedirect(f"/organizations/{accepted.organization.slug}/")
        invitation_decline(invitation_id=found.id, user=user, ip=client_ip(request))
    except errors.ApplicationError as exc:
        return problem(request, exc, title="The invitation could not be answered")
    messages.success(request, "Done: invitation declined.")
    return HttpResponseRedirect("/welcome")


@methods("POST")
@signed_in
def verification_resend(request: HttpRequest, user: User) -> HttpResponse:
    """A new confirmation link to the viewer's address (as `POST /auth/verify-email/resend`; rate-limited there)."""
    try:
        email_verification_resend(user=user)
    except errors.ApplicationError as exc:
        return problem(request, exc, title="The link was not sent")
    messages.success(request, f"Done: a new confirmation link went to {user.email}.")
    return HttpResponseRedirect("/welcome")


def billing_is_on() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


@methods("GET", "HEAD", "POST")
@signed_in
def welcome(request: HttpRequest, user: User) -> HttpResponse:
    """Onboarding: the invitations waiting for your (verified) address, and a new organization (the slug is
    suggested from the name; left empty, the suggestion is taken), then the plan when billing is on."""
    errors_shown: list[str] = []
    name, slug = request.GET.get("name", ""), ""
    if request.method == "POST":
        name, slug = request.POST.get("name", ""), request.POST.get("slug", "").strip()
        try:
            name = form_value(request, "name", Name)
            organization = organization_create(user=user, name=name, slug=slug or slug_suggest(name))
            if billing_is_on():
                return HttpResponseRedirect(f"/organizations/{organization.slug}/settings/billing?step=plan")
            return HttpResponseRedirect(f"/organizations/{organization.slug}/")
        except errors.ApplicationError as exc:
            errors_shown = messages_of(exc)
    pending = list(invitation_list_for_email(email=user.email)) if user.email_verified_at else []
    memberships = organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id")
    return page(request, "welcome", status=422 if errors_shown else 200, pending=pending, errors=errors_shown,
                name=name, slug=slug, suggested=slug_suggest(name) if name and not slug else "",
                memberships=memberships)  # fmt: skip


@methods("GET", "HEAD")
@signed_in
def slug_suggestion(request: HttpRequest, user: User) -> HttpResponse:
    """The free slug the onboarding form would take for `name` (the form shows it as you type)."""
    return JsonResponse({"slug": slug_suggest(request.GET.get("name", "")[:200])})
