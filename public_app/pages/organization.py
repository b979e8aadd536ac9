"""An organization's dashboard, with the switcher, and the invitation form on it."""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from public_app import errors
from public_app.access import Access, Capability
from public_app.models import Membership, User
from public_app.pages.common import grantable, messages_of, methods, org_access, page, problem, signed_in
from public_app.pages.settings import render_with_errors, typed_in
from public_app.selectors import organization_list_for_user
from public_app.services.invitations import invitation_create


@methods("GET", "HEAD")
def with_slash(request: HttpRequest, slug: str) -> HttpResponse:
    """`/organizations/acme` typed by hand: the dashboard's address ends with a slash."""
    return HttpResponseRedirect(f"/organizations/{slug}/")


@methods("GET", "HEAD")
@signed_in
def dashboard(request: HttpRequest, user: User, slug: str) -> HttpResponse:
    """An organization's dashboard, with the switcher (most recently used first; switching keeps you signed in)."""
    try:
        access = org_access(request, user, slug, Capability.ORG_READ)
    except errors.ApplicationError as exc:
        return problem(request, exc, title=None if exc.status == 404 else "Not available")
    Membership.objects.filter(organization=access.org, user=user).update(last_accessed_at=timezone.now())
    return _dashboard(request, user, access)


def _dashboard(request: HttpRequest, user: User, access: Access, status: int = 200, **extra: Any) -> HttpResponse:
    organization, role = access.org, access.role or ""
    members = Membership.objects.filter(organization=organization).select_related("user").order_by("id")
    return page(request, "dashboard", status=status, organization=organization, role=role,
                may_invite=access.can(Capability.MEMBERS_MANAGE),
                grantable=grantable(organization, role), members=members[:50],
                switcher=organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id"),
                **extra)  # fmt: skip


@methods("POST")
@signed_in
def invite(request: HttpRequest, user: User, slug: str) -> HttpResponse:
    """Invite a colleague: the same service and rules as `POST …/invitations` (owners and admins; anyone else is
    refused here as there). From the dashboard or Settings → Members (`back`)."""
    back = "settings/members" if request.POST.get("back") == "members" else ""
    try:
        access = org_access(request, user, slug, Capability.MEMBERS_MANAGE, write=True)
    except errors.ApplicationError as exc:
        return problem(request, exc)
    try:
        invitation_create(access=access, email=request.POST.get("email", ""), role=request.POST.get("role", "member"))
    except errors.ApplicationError as exc:
        if exc.status in (403, 404, 410):
            return problem(request, exc, title="The invitation was not sent")
        # A wrong address, a duplicate, no seat left: the form again, saying why, with what was typed.
        if back:
            return render_with_errors(request, user, access.org.slug, "members", exc)
        return _dashboard(request, user, access, status=exc.status, errors=messages_of(exc), typed=typed_in(request))
    messages.success(request, f"Invitation sent to {request.POST.get('email', '')}.")
    return HttpResponseRedirect(f"/organizations/{slug}/{back}")
