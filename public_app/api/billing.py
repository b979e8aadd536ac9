"""Settings → Billing: plans, the organization's subscription, Checkout and Portal, invoices; Stripe's webhook."""

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn
from public_app.pagination import Page, PageQuery
from public_app.plans import PaidPlanCode, PlanCode, plans
from public_app.services.billing.accounts import billing_status
from public_app.services.billing.checkout import checkout_start, invoices_page, portal_start
from public_app.services.billing.subscriptions import stripe_event_receive

router = Router(tags=["Billing"])


class PlanOut(Schema):
    code: PlanCode
    name: str
    price_per_seat: int = Field(..., description="Minor units (cents).")
    currency: str
    interval: Literal["month", "year"]
    max_seats: int | None


class PaymentMethodOut(Schema):
    brand: str
    last4: str


class BillingOut(Schema):
    plan: PlanCode
    status: str
    seats_used: int
    seats_billed: int
    max_seats: int | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    payment_method: PaymentMethodOut | None


class CheckoutIn(BodyIn):
    plan: PaidPlanCode
    success_url: str = Field(..., max_length=2000)
    cancel_url: str = Field(..., max_length=2000)


class PortalIn(BodyIn):
    return_url: str = Field(..., max_length=2000)


class UrlOut(Schema):
    url: str


class InvoiceOut(Schema):
    id: str
    number: str | None
    status: str | None
    amount_due: int
    currency: str
    created: datetime
    hosted_invoice_url: str | None
    pdf_url: str | None


class InvoicePageQuery(PageQuery):
    limit: int = Field(20, ge=1, le=100, description="Page size, 1–100 (Stripe's own cap).")


@router.get("/plans", response=Page[PlanOut], auth=None)
def list_plans(request: HttpRequest, page: Query[PageQuery]) -> dict:
    """The plans (no auth needed)."""
    return {"items": list(plans().values())[: page.limit], "next_cursor": None}


@router.get("/organizations/{slug}/billing", response=BillingOut, auth=OrgAuth(Capability.BILLING_VIEW))
def get_billing(request: AuthedRequest, slug: str) -> dict:
    """Plan, subscription status, seats used and billed, period end, payment method (owner, admin, billing)."""
    return billing_status(organization=request.auth.org)


@router.post("/organizations/{slug}/billing/checkout", response=UrlOut, auth=OrgAuth(Capability.BILLING_MANAGE))
@may_raise("seat_limit_reached", "stripe_unavailable", "billing_not_configured")
def start_checkout(request: AuthedRequest, slug: str, payload: CheckoutIn) -> dict:
    """A Stripe Checkout URL to subscribe to `plan`, one seat per member (owner, billing)."""
    url = checkout_start(
        organization=request.auth.org,
        plan=payload.plan,
        success_url=payload.success_url,
        cancel_url=payload.cancel_url,
    )
    return {"url": url}


@router.post("/organizations/{slug}/billing/portal", response=UrlOut, auth=OrgAuth(Capability.BILLING_MANAGE))
@may_raise("stripe_unavailable", "billing_not_configured")
def open_portal(request: AuthedRequest, slug: str, payload: PortalIn) -> dict:
    """A Stripe Billing Portal URL: payment method, invoices, cancellation (owner, billing)."""
    return {"url": portal_start(organization=request.auth.org, return_url=payload.return_url)}


@router.get("/organizations/{slug}/billing/invoices", response=Page[InvoiceOut], auth=OrgAuth(Capability.BILLING_VIEW))
@may_raise("stripe_unavailable", "billing_not_configured")
def list_invoices(request: AuthedRequest, slug: str, page: Query[InvoicePageQuery]) -> dict:
    """Invoices from Stripe, newest first (`cursor` is the last invoice id of the previous page)."""
    return invoices_page(organization=request.auth.org, limit=page.limit, cursor=page.cursor)


class StripeReceivedOut(Schema):
    received: bool = Field(description="Always true: Stripe may stop retrying.")
    duplicate: bool = Field(description="True when this event id had been received before (processed once).")


# The body is read raw (the signature covers its exact bytes), so ninja cannot describe it: stated here.
STRIPE_WEBHOOK = {
    "parameters": [{
        "in": "header", "name": "Stripe-Signature", "required": True, "schema": {"type": "string"},
        "description": "Stripe's signature of the raw body (`t=…,v1=…`), checked with `STRIPE_WEBHOOK_SECRET`.",
    }],
    "requestBody": {"required": True, "description": "A Stripe event, as Stripe sends it.", "content": {
        "application/json": {"schema": {"type": "object"},
                             "example": {"id": "evt_1", "type": "customer.subscription.updated"}},
    }},
}  # fmt: skip


@router.post("/billing/stripe/webhook", response={200: StripeReceivedOut}, auth=None, openapi_extra=STRIPE_WEBHOOK)
@may_raise("invalid_signature", "invalid_event", "billing_not_configured")
def stripe_webhook(request: HttpRequest) -> dict:
    """Stripe events. `Stripe-Signature` is verified over the raw body (400 `invalid_signature`); each event id is
    stored once and processed by a job; other event types are acknowledged and ignored."""
    created = stripe_event_receive(payload=request.body, signature=request.headers.get("Stripe-Signature"))
    return {"received": True, "duplicate": not created}
