"""Email actors."""

import dramatiq

from public_app.services.emails import invitation_email_send


@dramatiq.actor(queue_name="emails", max_retries=8, min_backoff=5000, max_backoff=30 * 60 * 1000)
def send_invitation_email(invitation_id: int, token_version: int) -> None:
    invitation_email_send(invitation_id=invitation_id, token_version=token_version)
