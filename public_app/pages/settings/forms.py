"""Settings → Organization, the forms: what each posted `action` does, with the capability it needs and whether it
works in the organization's schema."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import urlencode

from public_app import errors
from public_app.access import Access, Capability
from public_app.fields import LeadsforceKey, Name, OptionalName
from public_app.pages.common import form_value
from public_app.selectors import member_get
from public_app.services.api_keys import api_key_create, api_key_revoke
from public_app.services.billing.checkout import checkout_start, portal_start
from public_app.services.invitations import invitation_cancel, invitation_resend
from public_app.services.members import membership_change_role, membership_remove
from public_app.services.organizations import organization_set_logo, organization_update
from tenant_apps.integrations.services import leadsforce_connect, leadsforce_disconnect, leadsforce_sync_request
from tenant_apps.webhooks.services.endpoints import endpoint_create, endpoint_delete, endpoint_get
from tenant_apps.webhooks.services.events import event_emit


@dataclass(frozen=True)
class ShownOnce:
    """A secret to show in this answer only: the tab is rendered with it (outside the organization's schema)."""

    label: str
    secret: str


Result = HttpResponse | ShownOnce | str  # a finished answer, a secret to show, or what was done (shown on the tab)


def settings_url(slug: str, tab: str, **query: str) -> str:
    return f"/organizations/{slug}/settings/{tab}" + (f"?{urlencode(query)}" if query else "")


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
    messages.success(request, "Done: saved.")
    return HttpResponseRedirect(settings_url(organization.slug, "general"))


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


def _leave(request: HttpRequest, access: Access) -> Result:
    """Leave the organization (any member, as `DELETE …/members/{own id}`; the last owner may not)."""
    assert access.user_id is not None
    membership_remove(access=access, user_id=access.user_id)
    messages.success(request, f"You left {access.org.name}.")
    return HttpResponseRedirect("/")


def _resend(request: HttpRequest, access: Access) -> Result:
    invitation_resend(access=access, invitation_uid=request.POST.get("target", ""))
    return "invitation sent again"


def _cancel(request: HttpRequest, access: Access) -> Result:
    invitation_cancel(access=access, invitation_uid=request.POST.get("target", ""))
    return "invitation cancelled"


def _back_here(request: HttpRequest, access: Access, query: str) -> str:
    """An absolute URL of this tab for Stripe to send the viewer back to (its host must be one of
    BILLING_REDIRECT_HOSTS, as for the API's return URLs)."""
    return request.build_absolute_uri(settings_url(access.org.slug, "billing") + query)


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
    messages.success(request, "Done: ping queued.")
    return HttpResponseRedirect(settings_url(access.org.slug, "developers", webhook=endpoint.uid))


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
    "leave": Action("members", Capability.ORG_READ, _leave),
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
