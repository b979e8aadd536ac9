"""An organization's dashboard, with the switcher, and the invitation form on it."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from public_app import errors
from public_app.access import Capability
from public_app.models import Membership, User
from public_app.pages.common import grantable, org_access, page, problem, signed_in
from public_app.selectors import organization_list_for_user
from public_app.services.invitations import invitation_create


@require_http_methods(["GET", "HEAD"])
@signed_in
def dashboard(request: HttpRequest, user: User, slug: str) -> HttpResponse:
    """An organization's dashboard, with the switcher (most recently used first; switching keeps you signed in)."""
    try:
        access = org_access(request, user, slug, Capability.ORG_READ)
    except errors.ApplicationError as exc:
        return problem(request, exc, title=None if exc.status == 404 else "Not available")
    organization, role = access.org, access.role or ""
    Membership.objects.filter(organization=organization, user=user).update(last_accessed_at=timezone.now())
    members = Membership.objects.filter(organization=organization).select_related("user").order_by("id")
    return page(request, "dashboard", organization=organization, role=role,
                may_invite=access.can(Capability.MEMBERS_MANAGE),
                grantable=grantable(organization, role), members=members[:50],
                switcher=organization_list_for_user(user_id=user.id).order_by("-last_accessed_at", "-id"))  # fmt: skip


@require_http_methods(["POST"])
@signed_in
def invite(request: HttpRequest, user: User, slug: str) -> HttpResponse:
    """Invite a colleague: the same service and rules as `POST …/invitations` (owners and admins; anyone else is
    refused here as there). From the dashboard or Settings → Members (`back`)."""
    back = "settings/members" if request.POST.get("back") == "members" else ""
    try:
        access = org_access(request, user, slug, Capability.MEMBERS_MANAGE, write=True)
        invitation_create(access=access, email=request.POST.get("email", ""), role=request.POST.get("role", "member"))
    except errors.ApplicationError as exc:
        return problem(request, exc, title=None if exc.status == 404 else "The invitation was not sent")
    messages.success(request, f"Invitation sent to {request.POST.get('email', '')}.")
    return HttpResponseRedirect(f"/organizations/{slug}/{back}")
