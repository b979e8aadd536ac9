"""Settings → Organization, what each tab shows given the viewer's access (by the API's capabilities)."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest

from public_app import errors
from public_app.access import Access, Capability
from public_app.logos import logo_url
from public_app.models import OrganizationStatus
from public_app.pages.common import grantable
from public_app.plans import plans
from public_app.selectors import api_key_list, invitation_list_pending, member_list
from public_app.services.billing.accounts import billing_status
from public_app.services.billing.checkout import invoices_page
from public_app.tenancy import tenant_context
from tenant_apps.integrations.services import leadsforce_get
from tenant_apps.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from tenant_apps.webhooks.services.endpoints import endpoint_get

TABS = ("general", "members", "billing", "developers", "leadsforce")
MEMBERS_PER_PAGE = 100


def _general(request: HttpRequest, access: Access) -> dict[str, Any]:
    return {"logo": logo_url(access.org), "logo_max_kib": settings.LOGO_MAX_BYTES // 1024}


def _members(request: HttpRequest, access: Access) -> dict[str, Any]:
    may_manage = access.can(Capability.MEMBERS_MANAGE)
    return {
        "members": Paginator(member_list(organization=access.org).order_by("id"), MEMBERS_PER_PAGE).get_page(
            request.GET.get("page")
        ),
        "pending": invitation_list_pending(organization=access.org)[:200] if may_manage else [],
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
        "subscribed": request.GET.get("done") == "subscribed",
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
