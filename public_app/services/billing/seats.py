"""The seat sync: the subscription's quantity follows the member count (debounced, versioned, idempotent)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.clients import stripe_api
from public_app.models import BillingAccount, Invitation, InvitationStatus, Membership, Organization
from public_app.outbox import enqueue
from public_app.plans import plan_get
from public_app.services.billing.accounts import PAID_STATUSES


def seats_sync_request(*, organization: Organization) -> None:
    """Make sure one seat sync is queued (with the caller's commit). Changes arriving while one is queued ride along
    with it; a change after the queued job has started queues the trailing run that picks it up."""
    if not settings.STRIPE_SECRET_KEY:
        return
    delay = timedelta(milliseconds=settings.BILLING_SEAT_SYNC_DELAY_MS) if settings.BILLING_SEAT_SYNC_DELAY_MS else None
    enqueue("sync_billing_seats", organization.id, organization=organization, delay=delay, unique=True)


def seats_sync(*, organization_id: int) -> int | None:
    """Set the subscription item's quantity to the live member count. Returns the quantity pushed, or None."""
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().filter(organization_id=organization_id).first()
        if (
            account is None
            or not account.stripe_subscription_item_id
            or account.subscription_status not in PAID_STATUSES
        ):
            return None
        quantity = Membership.objects.active().filter(organization_id=organization_id).count()
        if quantity == account.seats_billed and account.seats_pending is None:
            return None
        if account.seats_pending != quantity:
            account.seats_version += 1
            account.seats_pending = quantity
            account.save(update_fields=["seats_version", "seats_pending", "updated_at"])
        item_id, version = account.stripe_subscription_item_id, account.seats_version
    stripe_api.subscription_item_set_quantity(
        item_id=item_id, quantity=quantity, idempotency_key=f"seats-{item_id}-{quantity}-v{version}"
    )
    BillingAccount.objects.filter(organization_id=organization_id, seats_version=version).update(
        seats_billed=quantity, seats_pending=None, updated_at=timezone.now()
    )
    return quantity


def seats_taken(organization: Organization, *, excluding_invitation_id: int | None = None) -> int:
    """Active members and pending, unexpired invitations (a deactivated member holds no seat)."""
    pending = Invitation.objects.filter(
        organization=organization, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
    )
    if excluding_invitation_id is not None:
        pending = pending.exclude(id=excluding_invitation_id)
    return Membership.objects.active().filter(organization=organization).count() + pending.count()


def seat_check(organization: Organization, *, excluding_invitation_id: int | None = None) -> None:
    """409 `seat_limit_reached` when one more seat (an invitation, a reactivation) would go over the plan's cap."""
    cap = plan_get(organization.plan).max_seats
    if cap is not None and seats_taken(organization, excluding_invitation_id=excluding_invitation_id) + 1 > cap:
        raise errors.Conflict(
            f"The {organization.plan} plan allows {cap} seats (members and pending invitations).",
            code="seat_limit_reached",
            details={"max_seats": cap},
        )
