"""Settings → Organization: General, Members, Billing, Developers and Leadsforce.

Every tab is visible to every member; what it shows and the forms on it depend on the viewer's role, by the same
capabilities the API checks. Every form posts an `action`; each action names the capability it needs and whether it
works in the organization's schema, and is refused (403, 404, 503 while being set up) by the API's own rule when
posted anyway. A 4xx the API would give for the input is shown on the tab itself, next to the form; a secret (an API
key, a webhook's signing secret) is shown in the answer to the form that created it, once, never in a URL.
"""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from public_app import errors
from public_app.access import Access, Capability
from public_app.models import User
from public_app.pages.common import grantable, messages_of, methods, org_access, page, problem, signed_in
from public_app.pages.settings.forms import ACTIONS, ShownOnce, settings_url
from public_app.pages.settings.tabs import TABS, VIEWS
from public_app.tenancy import tenant_context


def _render(request: HttpRequest, access: Access, tab: str, status: int = 200, **extra: Any) -> HttpResponse:
    role = access.role or ""
    return page(request, "settings", status=status, organization=access.org, role=role, tab=tab, tabs=TABS,
                may_update=access.can(Capability.ORG_UPDATE), may_manage=access.can(Capability.MEMBERS_MANAGE),
                may_view_billing=access.can(Capability.BILLING_VIEW),
                may_manage_billing=access.can(Capability.BILLING_MANAGE),
                may_develop=access.can(Capability.DEVELOPERS), may_integrate=access.can(Capability.INTEGRATIONS),
                grantable=grantable(access.org, role),
                **VIEWS[tab](request, access), **extra)  # fmt: skip


@methods("GET", "HEAD", "POST")
@signed_in
def settings_page(request: HttpRequest, user: User, slug: str, tab: str = "general") -> HttpResponse:
    if tab not in TABS:
        return problem(request, errors.NotFound("Not found."))
    try:
        access = org_access(request, user, slug, Capability.ORG_READ)
        if request.method == "POST":
            return _submit(request, user, slug, tab)
        return _render(request, access, tab)
    except errors.ApplicationError as exc:
        return problem(request, exc)


def typed_in(request: HttpRequest) -> dict[str, Any]:
    """What the viewer typed into the form that failed, to show it again (never a secret: no key, no password)."""
    typed: dict[str, Any] = {k: v for k, v in request.POST.dict().items() if k not in ("api_key", "password")}
    typed["events"] = request.POST.getlist("events")
    return typed


def render_with_errors(
    request: HttpRequest, user: User, slug: str, tab: str, exc: errors.ApplicationError
) -> HttpResponse:
    """The tab again, saying what was wrong next to the form, with what was typed in it."""
    return _render(request, org_access(request, user, slug, Capability.ORG_READ), tab, status=exc.status,
                   errors=messages_of(exc), typed=typed_in(request))  # fmt: skip


def _submit(request: HttpRequest, user: User, slug: str, tab: str) -> HttpResponse:
    action = ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        raise errors.BadRequest("Unknown action.")
    tab = action.tab  # the answer shows the tab the form belongs to, whichever settings URL it was posted to
    access = org_access(request, user, slug, action.capability, write=True, require_active=action.in_schema)
    try:
        if action.in_schema:
            with tenant_context(access.org):
                result = action.run(request, access)
        else:
            result = action.run(request, access)
    except errors.ApplicationError as exc:
        if exc.status in (404, 410):
            raise
        # The access check passed, but the service refused (403: the last owner, a role above one's own), or the
        # input (422), the state (409) or a dependency (502, 503) was wrong: the tab again, saying why.
        return render_with_errors(request, user, access.org.slug, tab, exc)
    if isinstance(result, HttpResponse):
        return result
    if isinstance(result, ShownOnce):
        return _render(request, access, tab, shown_once=result)
    messages.success(request, f"Done: {result}.")
    return HttpResponseRedirect(settings_url(access.org.slug, tab))
