"""Settings → Organization: General, Members, Billing, Developers and Leadsforce.

Every tab is visible to every member; what it shows and the forms on it depend on the viewer's role, by the same
capabilities the API checks. Every form posts an `action`; each action names the capability it needs and whether it
works in the organization's schema, and is refused (403, 404, 503 while being set up) by the API's own rule when
posted anyway. A 4xx the API would give for the input is shown on the tab itself, next to the form; a secret (an API
key, a webhook's signing secret) is shown in the answer to the form that created it, once, never in a URL.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from public_app import errors
from public_app.access import Access, Capability
from public_app.fields import LeadsforceKey, Name, OptionalName
from public_app.logos import logo_url
from public_app.models import OrganizationStatus, User
from public_app.pages.common import form_value, grantable, messages_of, org_access, page, problem, signed_in
from public_app.plans import plans
from public_app.selectors import api_key_list, invitation_list_pending, member_get, member_list
from public_app.services.api_keys import api_key_create, api_key_revoke
from public_app.services.billing.accounts import billing_status
from public_app.services.billing.checkout import checkout_start, invoices_page, portal_start
from public_app.services.invitations import invitation_cancel, invitation_resend
from public_app.services.members import membership_change_role, membership_remove
from public_app.services.organizations import organization_set_logo, organization_update
from public_app.tenancy import tenant_context
from tenant_apps.integrations.services import (
    leadsforce_connect,
    leadsforce_disconnect,
    leadsforce_get,
    leadsforce_sync_request,
)
from tenant_apps.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from tenant_apps.webhooks.services.endpoints import endpoint_create, endpoint_delete, endpoint_get
from tenant_apps.webhooks.services.events import event_emit

TABS = ("general", "members", "billing", "developers", "leadsforce")


@dataclass(frozen=True)
class ShownOnce:
    """A secret to show in this answer only: the tab is rendered with it (outside the organization's schema)."""

    label: str
    secret: str


Result = HttpResponse | ShownOnce | str  # a finished answer, a secret to show, or what was done (shown on the tab)


def _url(slug: str, tab: str, **query: str) -> str:
    return f"/organizations/{slug}/settings/{tab}" + (f"?{urlencode(query)}" if query else "")


# ---- the tabs: what each shows, given the viewer's access ----


def _general(request: HttpRequest, access: Access) -> dict[str, Any]:
    return {"logo": logo_url(access.org), "logo_max_kib": settings.LOGO_MAX_BYTES // 1024}


def _members(request: HttpRequest, access: Access) -> dict[str, Any]:
    may_manage = access.can(Capability.MEMBERS_MANAGE)
    return {
        "members": member_list(organization=access.org).order_by("id")[:200],
        "pending": invitation_list_pending(organization=access.org)[:200] if may_manage else [],
        "invited": request.GET.get("invited", ""),
    }


def _billing(request: HttpRequest, access: Access) -> dict[str, Any]:
    if not access.can(Capability.BILLING_VIEW):
        return {}
    billing_on = bool(settings.STRIPE_SECRET_KEY)
    invoices: list[dict[str, Any]] = []
    invoices_error = ""
    if billing_on:
        try:
            invoices = invoices_page(organization=access.org, limit=10, cursor=None)["items"]
        except errors.ApplicationError as exc:  # Stripe down: the rest of the tab still works
            invoices_error = exc.message
    return {
        "billing": billing_status(organization=access.org), "billing_on": billing_on, "plans": list(plans().values()),
        "invoices": invoices, "invoices_error": invoices_error, "plan_step": request.GET.get("step") == "plan",
    }  # fmt: skip


def _schema_ready(access: Access) -> bool:
    return access.org.status == OrganizationStatus.ACTIVE


def _developers(request: HttpRequest, access: Access) -> dict[str, Any]:
    if not access.can(Capability.DEVELOPERS):
        return {}
    role = access.role or ""
    context: dict[str, Any] = {
        "keys": list(api_key_list(organization=access.org).order_by("-id")[:200]),
        "key_roles": [r for r in grantable(access.org, role) if r not in ("owner", "billing")],
        "event_types": EVENT_TYPES, "schema_ready": _schema_ready(access),
    }  # fmt: skip
    if context["schema_ready"]:
        with tenant_context(access.org):
            context["webhooks"] = list(WebhookEndpoint.objects.order_by("-id")[:200])
            chosen = request.GET.get("webhook", "")
            if chosen:
                endpoint = endpoint_get(endpoint_uid=chosen)
                context["webhook"] = endpoint
                context["deliveries"] = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-id")[:50])
    return context


def _leadsforce(request: HttpRequest, access: Access) -> dict[str, Any]:
    if not access.can(Capability.INTEGRATIONS):
        return {}
    context: dict[str, Any] = {"schema_ready": _schema_ready(access)}
    context["leadsforce_on"] = bool(settings.LEADSFORCE_API_URL)
    if context["schema_ready"]:
        with tenant_context(access.org):
            context["integration"] = leadsforce_get()
    return context


VIEWS: dict[str, Callable[[HttpRequest, Access], dict[str, Any]]] = {
    "general": _general, "members": _members, "billing": _billing, "developers": _developers,
    "leadsforce": _leadsforce,
}  # fmt: skip


# ---- the forms: what each action does, with the capability it needs ----


@dataclass(frozen=True)
class Action:
    tab: str
    capability: Capability
    run: Callable[[HttpRequest, Access], Result]
    in_schema: bool = False  # works in the organization's schema: refused (503) while it is being set up


def _save_general(request: HttpRequest, access: Access) -> Result:
    changes: dict[str, Any] = {"name": form_value(request, "name", Name), "slug": request.POST.get("slug", "")}
    for field in ("website", "billing_email", "timezone"):
        if field in request.POST:
            changes[field] = form_value(request, field, OptionalName)
    organization = organization_update(access=access, changes=changes)
    return HttpResponseRedirect(_url(organization.slug, "general", done="saved"))


def _upload_logo(request: HttpRequest, access: Access) -> Result:
    upload = request.FILES.get("logo")
    if upload is None:
        raise errors.ValidationFailed.for_field("logo", "Choose an image file.")
    organization_set_logo(access=access, data=upload.read(settings.LOGO_MAX_BYTES + 1))
    return "logo uploaded"


def _remove_logo(request: HttpRequest, access: Access) -> Result:
    organization_set_logo(access=access, data=None)
    return "logo removed"


def _membership(request: HttpRequest, access: Access) -> Any:
    membership = member_get(organization=access.org, user_uid=request.POST.get("target", ""))
    if membership is None:
        raise errors.NotFound("Member not found.")
    return membership


def _change_role(request: HttpRequest, access: Access) -> Result:
    membership_change_role(access=access, user_id=_membership(request, access).user_id,
                           role=request.POST.get("role", ""))  # fmt: skip
    return "role changed"


def _remove_member(request: HttpRequest, access: Access) -> Result:
    membership_remove(access=access, user_id=_membership(request, access).user_id)
    return "member removed"


def _resend(request: HttpRequest, access: Access) -> Result:
    invitation_resend(access=access, invitation_uid=request.POST.get("target", ""))
    return "invitation sent again"


def _cancel(request: HttpRequest, access: Access) -> Result:
    invitation_cancel(access=access, invitation_uid=request.POST.get("target", ""))
    return "invitation cancelled"


def _back_here(request: HttpRequest, access: Access, query: str) -> str:
    """An absolute URL of this tab for Stripe to send the viewer back to (its host must be one of
    BILLING_REDIRECT_HOSTS, as for the API's return URLs)."""
    return request.build_absolute_uri(_url(access.org.slug, "billing") + query)


def _checkout(request: HttpRequest, access: Access) -> Result:
    cancel = "?step=plan" if request.POST.get("step") else ""
    url = checkout_start(organization=access.org, plan=request.POST.get("plan", ""),
                         success_url=_back_here(request, access, "?done=subscribed"),
                         cancel_url=_back_here(request, access, cancel))  # fmt: skip
    return HttpResponseRedirect(url)


def _portal(request: HttpRequest, access: Access) -> Result:
    return HttpResponseRedirect(portal_start(organization=access.org, return_url=_back_here(request, access, "")))


def _create_key(request: HttpRequest, access: Access) -> Result:
    key, raw = api_key_create(access=access, name=form_value(request, "name", Name),
                              role=request.POST.get("role", "member"))  # fmt: skip
    return ShownOnce(f"The key {key.name}", raw)


def _revoke_key(request: HttpRequest, access: Access) -> Result:
    api_key_revoke(access=access, key_uid=request.POST.get("target", ""))
    return "key revoked"


def _create_webhook(request: HttpRequest, access: Access) -> Result:
    url = request.POST.get("url", "")
    if len(url) > 2000:
        raise errors.ValidationFailed.for_field("url", "At most 2000 characters.")
    endpoint, secret = endpoint_create(access=access, url=url, events=request.POST.getlist("events"),
                                       description=form_value(request, "description", OptionalName))  # fmt: skip
    return ShownOnce(f"The signing secret of {endpoint.url}", secret)


def _delete_webhook(request: HttpRequest, access: Access) -> Result:
    endpoint_delete(access=access, endpoint_uid=request.POST.get("target", ""))
    return "webhook deleted"


def _test_webhook(request: HttpRequest, access: Access) -> Result:
    endpoint = endpoint_get(endpoint_uid=request.POST.get("target", ""))
    event_emit(organization=access.org, event_type="ping", data={"webhook_id": endpoint.uid}, endpoint=endpoint)
    return HttpResponseRedirect(_url(access.org.slug, "developers", webhook=endpoint.uid, done="ping queued"))


def _connect_leadsforce(request: HttpRequest, access: Access) -> Result:
    leadsforce_connect(access=access, api_key=form_value(request, "api_key", LeadsforceKey))
    return "Leadsforce connected"


def _disconnect_leadsforce(request: HttpRequest, access: Access) -> Result:
    leadsforce_disconnect(access=access)
    return "Leadsforce disconnected"


def _sync_leadsforce(request: HttpRequest, access: Access) -> Result:
    leadsforce_sync_request(organization=access.org)
    return "sync queued"


ACTIONS = {
    "general": Action("general", Capability.ORG_UPDATE, _save_general),
    "logo_upload": Action("general", Capability.ORG_UPDATE, _upload_logo),
    "logo_remove": Action("general", Capability.ORG_UPDATE, _remove_logo),
    "role": Action("members", Capability.MEMBERS_MANAGE, _change_role),
    "remove": Action("members", Capability.MEMBERS_MANAGE, _remove_member),
    "resend": Action("members", Capability.MEMBERS_MANAGE, _resend),
    "cancel": Action("members", Capability.MEMBERS_MANAGE, _cancel),
    "checkout": Action("billing", Capability.BILLING_MANAGE, _checkout),
    "portal": Action("billing", Capability.BILLING_MANAGE, _portal),
    "key_create": Action("developers", Capability.DEVELOPERS, _create_key),
    "key_revoke": Action("developers", Capability.DEVELOPERS, _revoke_key),
    "webhook_create": Action("developers", Capability.DEVELOPERS, _create_webhook, in_schema=True),
    "webhook_delete": Action("developers", Capability.DEVELOPERS, _delete_webhook, in_schema=True),
    "webhook_test": Action("developers", Capability.DEVELOPERS, _test_webhook, in_schema=True),
    "leadsforce_connect": Action("leadsforce", Capability.INTEGRATIONS, _connect_leadsforce, in_schema=True),
    "leadsforce_disconnect": Action("leadsforce", Capability.INTEGRATIONS, _disconnect_leadsforce, in_schema=True),
    "leadsforce_sync": Action("leadsforce", Capability.INTEGRATIONS, _sync_leadsforce, in_schema=True),
}


def _render(request: HttpRequest, access: Access, tab: str, status: int = 200, **extra: Any) -> HttpResponse:
    role = access.role or ""
    return page(request, "settings", status=status, organization=access.org, role=role, tab=tab, tabs=TABS,
                may_update=access.can(Capability.ORG_UPDATE), may_manage=access.can(Capability.MEMBERS_MANAGE),
                may_view_billing=access.can(Capability.BILLING_VIEW),
                may_manage_billing=access.can(Capability.BILLING_MANAGE),
                may_develop=access.can(Capability.DEVELOPERS), may_integrate=access.can(Capability.INTEGRATIONS),
                grantable=grantable(access.org, role), done=request.GET.get("done", ""),
                **VIEWS[tab](request, access), **extra)  # fmt: skip


@require_http_methods(["GET", "HEAD", "POST"])
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
        if exc.status in (403, 404, 410):
            raise
        # The input (422), the state (409) or a dependency (502, 503) was wrong: the tab again, saying so.
        return _render(request, org_access(request, user, access.org.slug, Capability.ORG_READ), tab,
                       status=exc.status, errors=messages_of(exc))  # fmt: skip
    if isinstance(result, HttpResponse):
        return result
    if isinstance(result, ShownOnce):
        return _render(request, access, tab, shown_once=result)
    return HttpResponseRedirect(_url(access.org.slug, tab, done=result))
