"""Email actors."""

import dramatiq

from public_app.services.emails import invitation_email_send, join_request_email_send, webhook_disabled_email_send
from public_app.services.verification import verification_email_send


@dramatiq.actor(queue_name="emails", max_retries=8, min_backoff=5000, max_backoff=30 * 60 * 1000)
def send_invitation_email(invitation_id: int, token_version: int) -> None:
    invitation_email_send(invitation_id=invitation_id, token_version=token_version)


@dramatiq.actor(queue_name="emails", max_retries=8, min_backoff=5000, max_backoff=30 * 60 * 1000)
def send_webhook_disabled_email(organization_id: int, endpoint_uid: str) -> None:
    webhook_disabled_email_send(organization_id=organization_id, endpoint_uid=endpoint_uid)


@dramatiq.actor(queue_name="emails", max_retries=8, min_backoff=5000, max_backoff=30 * 60 * 1000)
def send_verification_email(verification_id: int) -> None:
    verification_email_send(verification_id=verification_id)


@dramatiq.actor(queue_name="emails", max_retries=8, min_backoff=5000, max_backoff=30 * 60 * 1000)
def send_join_request_email(join_request_id: int) -> None:
    join_request_email_send(join_request_id=join_request_id)
