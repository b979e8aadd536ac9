"""The organization's billing state as Settings → Billing shows it, and the Stripe call wrapper every part uses."""

import logging
from typing import Any

import stripe

from public_app import errors
from public_app.clients import stripe_api
from public_app.models import BillingAccount, Membership, Organization
from public_app.plans import plan_get

logger = logging.getLogger(__name__)

PAID_STATUSES = {"active", "trialing", "past_due"}


def billing_account(organization: Organization) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(organization=organization)
    return account


def seats_used(organization: Organization) -> int:
    return Membership.objects.active().filter(organization=organization).count()


def stripe_call(func: Any, **kwargs: Any) -> Any:
    try:
        return func(**kwargs)
    except stripe_api.StripeNotConfigured:
        raise errors.ServiceUnavailable("Billing is not configured here.", code="billing_not_configured") from None
    except stripe.StripeError as exc:
        logger.warning("stripe call %s failed: %s", getattr(func, "__name__", func), exc)
        raise errors.BadGateway(
            "Stripe could not complete the request; try again.", code="stripe_unavailable"
        ) from None


def billing_status(*, organization: Organization) -> dict[str, Any]:
    account = billing_account(organization)
    return {
        "plan": organization.plan,
        "status": account.subscription_status or ("free" if organization.plan == "free" else "unknown"),
        "seats_used": seats_used(organization),
        "seats_billed": account.seats_billed,
        "max_seats": plan_get(organization.plan).max_seats,
        "current_period_end": account.current_period_end,
        "cancel_at_period_end": account.cancel_at_period_end,
        "payment_method": (
            {"brand": account.payment_method_brand, "last4": account.payment_method_last4}
            if account.payment_method_last4
            else None
        ),
    }
