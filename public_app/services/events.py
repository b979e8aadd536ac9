"""Side effects of membership changes that other capabilities hook into (billing seat sync, webhooks).

Kept in one place so every path that changes memberships (role change, removal, leave, accepted invitation)
triggers the same follow-ups after commit.
"""

from public_app.models import Membership, Organization


def membership_changed(*, organization: Organization, event: str, membership: Membership) -> None:
    """Called inside the transaction that changed `membership`; follow-ups are enqueued on commit."""
