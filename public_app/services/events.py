"""Follow-ups of membership changes that other capabilities hook into (webhooks, billing seat sync).

Kept in one place so every path that changes memberships (role change, removal, leave, accepted invitation)
triggers the same follow-ups, inside the transaction that made the change (deliveries are enqueued on commit).
"""

from public_app.models import Membership, Organization


def membership_changed(*, organization: Organization, event: str, membership: Membership) -> None:
    from public_app.services.billing import seats_sync_request
    from tenant_apps.webhooks.services import event_emit

    if event in ("member.added", "member.removed"):
        seats_sync_request(organization=organization)
    user = membership.user
    event_emit(
        organization=organization,
        event_type=event,
        data={"user": {"id": user.uid, "email": user.email}, "role": membership.role},
    )
