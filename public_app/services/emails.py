"""Outgoing email, through Django's email framework (EMAIL_BACKEND and friends from the environment)."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from public_app.mail import message_id, send_once
from public_app.models import Invitation, InvitationStatus
from public_app.services.invitations import invitation_link
from public_app.tenancy import tenant_context


def invitation_email_send(*, invitation_id: int, token_version: int) -> bool:
    """Send the email for this token version, at most once (public_app.mail.send_once). Returns whether an email
    went out.

    Skipped when the invitation is no longer pending, when a resend has replaced this token (its own job sends the
    new one), or when this version's email already went out.
    """

    def build() -> EmailMultiAlternatives | None:
        invitation = Invitation.objects.select_related("organization", "invited_by").filter(id=invitation_id).first()
        if (
            invitation is None
            or invitation.status != InvitationStatus.PENDING
            or invitation.token_version != token_version
            or invitation.email_sent_version >= token_version
        ):
            return None
        inviter = invitation.invited_by
        context = {
            "inviter_name": (inviter.name or inviter.email) if inviter else invitation.organization.name,
            "inviter_email": inviter.email if inviter else "",
            "organization_name": invitation.organization.name,
            "role": invitation.role,
            "email": invitation.email,
            "expires_at": invitation.expires_at,
            "link": invitation_link(invitation),
        }
        message = EmailMultiAlternatives(
            subject=f"{context['inviter_name']} invited you to join {invitation.organization.name}",
            body=render_to_string("email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[invitation.email],
        )
        message.attach_alternative(render_to_string("email/invitation.html", context), "text/html")
        return message

    def record() -> None:
        Invitation.objects.filter(id=invitation_id, email_sent_version__lt=token_version).update(
            email_sent_version=token_version, updated_at=timezone.now()
        )

    key = f"invitation:{invitation_id}:{token_version}"
    invitation_uid = Invitation.objects.filter(id=invitation_id).values_list("uid", flat=True).first() or key
    # Stable per token version: a duplicate after a crash between sending and recording is recognisable.
    return send_once(key, build, msg_id=message_id(f"{invitation_uid}.{token_version}"), on_sent=record)


def webhook_disabled_email_send(*, organization_id: int, endpoint_uid: str) -> bool:
    """Tell the organization's owners that an endpoint was disabled after failing for days."""
    from public_app.models import Membership, Organization, Role

    organization = Organization.objects.filter(id=organization_id).first()
    if organization is None:
        return False
    with tenant_context(organization):
        from tenant_apps.webhooks.models import WebhookEndpoint

        endpoint = WebhookEndpoint.objects.filter(uid=endpoint_uid, enabled=False).first()
    if endpoint is None:
        return False
    owners = list(
        Membership.objects.active()
        .filter(organization=organization, role=Role.OWNER)
        .values_list("user__email", flat=True)
    )
    message = EmailMultiAlternatives(
        subject=f"A webhook endpoint of {organization.name} was disabled",
        body=(
            f"The webhook endpoint {endpoint.url} of {organization.name} failed on every attempt for "
            f"{settings.WEBHOOK_DISABLE_AFTER_SECONDS // 3600} hours and has been disabled.\n\n"
            "Fix the receiver, then re-enable it in Settings → Developers (PATCH enabled=true).\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=owners,
    )
    # Once per time it was disabled (re-enabled and disabled again later is a new email).
    return send_once(f"webhook-disabled:{organization.id}:{endpoint_uid}:{endpoint.updated_at.timestamp():.0f}",
                     lambda: message)  # fmt: skip


def join_request_email_send(*, join_request_id: int) -> bool:
    """Tell the requester the answer to their join request, once."""
    from public_app.models import JoinRequest, JoinRequestStatus

    def build() -> EmailMultiAlternatives | None:
        request = JoinRequest.objects.select_related("organization", "user").filter(id=join_request_id).first()
        if request is None or request.status not in (JoinRequestStatus.APPROVED, JoinRequestStatus.DECLINED):
            return None
        name = request.organization.name
        if request.status == JoinRequestStatus.APPROVED:
            subject = f"You have joined {name}"
            body = (f"Your request to join {name} was approved: you are a member, as {request.role}.\n\n"
                    f"Open it: {settings.FRONTEND_URL}/organizations/{request.organization.slug}/\n")  # fmt: skip
        else:
            subject = f"Your request to join {name}"
            body = f"Your request to join {name} was declined.\n"
        return EmailMultiAlternatives(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL,
                                      to=[request.user.email])  # fmt: skip

    def record() -> None:
        JoinRequest.objects.filter(id=join_request_id).update(email_sent=True, updated_at=timezone.now())

    return send_once(f"join-request:{join_request_id}", build, msg_id=message_id(f"jr.{join_request_id}"),
                     on_sent=record)  # fmt: skip
