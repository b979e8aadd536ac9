"""Email verification: nothing is granted by email address until its owner has followed a link sent to it.

Sign-up sends a link to the new account's address. An account whose address is not verified can sign in and use
the organizations it created or joined with an emailed invitation link, but sees no invitations by address and
cannot hold an address against its owner: a later sign-up with the same address gets a link of its own, and
following it retires the unverified account (its sessions end, the address is released) and creates the new one.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Account
from public_app.bruteforce import guard_check, guard_failed, guard_succeeded
from public_app.mail import message_id, send_once
from public_app.models import AuthToken, EmailVerification, User
from public_app.outbox import enqueue
from public_app.ratelimit import ratelimit_hit
from public_app.secrets import derived_token, hash_secret, hashes_match

TOKEN_PREFIX = "ev_"  # noqa: S105 - a prefix, not a secret


def verification_token(verification: EmailVerification) -> str:
    return derived_token(TOKEN_PREFIX, "email-verification-token", f"{verification.uid}:{verification.token_salt}")


def verification_link(verification: EmailVerification) -> str:
    return f"{settings.FRONTEND_URL}/verify-email/{verification_token(verification)}"


def email_verification_start(*, email: str, user: User) -> EmailVerification:
    """Record a link confirming `user`'s address and send it after commit (by a job). At most a few per account an
    hour (the account's own budget: nobody else's requests use it up)."""
    ratelimit_hit(f"verify-email:{user.uid}", limit=settings.RATELIMIT_VERIFICATION_EMAILS_PER_HOUR, window=3600)
    return _link_create(email=email, user=user)


def email_verification_claim_start(*, email: str, ip: str | None) -> EmailVerification:
    """A sign-up met an unconfirmed account holding `email`: send the address a claim link. Budgets of their own,
    per address and asking client and per address, so neither the holder's resends nor one client's requests can
    keep the owner of the address from claiming it, and the form cannot flood an inbox."""
    ratelimit_hit(f"verify-claim:{email}:{ip}", limit=settings.RATELIMIT_VERIFICATION_EMAILS_PER_HOUR, window=3600)
    ratelimit_hit(f"verify-claim:{email}", limit=settings.RATELIMIT_VERIFICATION_EMAILS_PER_HOUR * 4, window=3600)
    return _link_create(email=email, user=None)


def _link_create(*, email: str, user: User | None) -> EmailVerification:
    verification = EmailVerification(
        email=email, user=user, token_salt=secrets.token_hex(32),
        expires_at=timezone.now() + timedelta(hours=settings.EMAIL_VERIFICATION_TTL_HOURS),
    )  # fmt: skip
    verification.token_hash = hash_secret(verification_token(verification))
    verification.save()
    enqueue("send_verification_email", verification.id)
    return verification


def email_verification_resend(*, user: User) -> EmailVerification | None:
    """A new link for the account's own address; None when it is already verified."""
    if user.email_verified_at is not None:
        return None
    return email_verification_start(email=user.email, user=user)


def _by_token(token: str, ip: str | None) -> EmailVerification:
    guard_check("link", ip=ip)
    verification = None
    if token.startswith(TOKEN_PREFIX) and len(token) <= 100:
        token_hash = hash_secret(token)
        verification = EmailVerification.objects.select_for_update().filter(token_hash=token_hash).first()
        if verification is not None and not hashes_match(verification.token_hash, token_hash):
            verification = None
    if verification is None:
        guard_failed("link", ip=ip)
        raise errors.NotFound("Verification link not found.")
    guard_succeeded("link", ip=ip)
    if verification.used_at is not None:
        raise errors.Gone("This verification link was already used.", code="verification_used")
    if verification.expires_at <= timezone.now():
        raise errors.Gone("This verification link has expired.", code="verification_expired")
    return verification


def user_mark_verified(*, user: User) -> None:
    """The address is confirmed; organizations whose verified domain has `auto_join` take the user in."""
    if user.email_verified_at is None:
        from public_app.services.domains import domains_auto_join

        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at", "updated_at"])
        domains_auto_join(user=user)


@transaction.atomic
def email_verify(
    *,
    token: str,
    ip: str | None = None,
    password: str | None = None,
    name: str | None = None,
    caller_user_id: int | None = None,
) -> tuple[User, bool]:
    """Follow a link. Returns the verified user and whether the caller should issue it a token (a claim).

    A claim link (a sign-up met an unconfirmed account holding the address) hands that account to whoever reads the
    mailbox, like a password reset by email: it is confirmed, gets the password given here (the one typed at the
    claiming sign-up is never kept, so asking for a claim gains nothing), and every session and API key it had ends
    (they may be a squatter's). Nothing of the account is deleted: if it was the reader's own, they keep it.

    The same holds for an account's own confirmation link followed by anyone but that account (no bearer token of
    it): whoever typed the address at sign-up may not be who reads the mailbox, so the reader chooses the password
    and every earlier session ends. Followed with the account's own token, it just confirms the address."""
    verification = _by_token(token, ip)
    if verification.user is not None:
        user = User.objects.select_for_update().get(id=verification.user.pk)
        if user.email != verification.email:
            raise errors.Gone("The account's email has changed since this link was sent.", code="verification_expired")
        if caller_user_id == user.id or user.email_verified_at is not None:
            verification.used_at = timezone.now()
            verification.save(update_fields=["used_at", "updated_at"])
            user_mark_verified(user=user)
            return user, False
        if not password:
            raise errors.ValidationFailed.for_field(
                "password", "Sign in to confirm your address, or choose the account's password to follow this link."
            )
        password_validate(password, User(email=user.email, name=name or user.name))
        verification.used_at = timezone.now()
        verification.save(update_fields=["used_at", "updated_at"])
        _hand_over(user, password=password, name=name)
        return user, True
    if not password:
        raise errors.ValidationFailed.for_field("password", "Choose the account's password to follow this link.")
    candidate = User(email=verification.email, name=(name or "").strip())
    password_validate(password, candidate)
    verification.used_at = timezone.now()
    verification.save(update_fields=["used_at", "updated_at"])
    holder = User.objects.select_for_update().filter(email=verification.email).first()
    if holder is None:  # the unconfirmed account is gone since: this becomes a plain sign-up
        candidate.set_password(password)
        candidate.email_verified_at = timezone.now()
        candidate.save()
        return candidate, True
    if holder.email_verified_at is not None or not holder.is_active:
        raise errors.Conflict("An account with this email already exists.", code="email_taken")
    _hand_over(holder, password=password, name=name)
    return holder, True


def password_validate(password: str, user: User) -> None:
    """Django's password validators, as a 422 naming the field (sign-up, claims)."""
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed(
            "The password is too weak.", details=[{"field": "password", "message": m} for m in exc.messages]
        ) from None


def _hand_over(user: User, *, password: str, name: str | None) -> None:
    """The reader of the mailbox takes the unconfirmed account: new password, confirmed, nothing of its past access
    left (sessions and the API keys it created end; a key is a credential its previous holder may know)."""
    from public_app.access import Access
    from public_app.services.api_keys import api_keys_of_user_revoke
    from public_app.services.members import invitations_beyond_role_cancel

    for auth_token in AuthToken.objects.filter(user=user, revoked_at__isnull=True):
        auth_token.revoked_at = timezone.now()
        auth_token.save(update_fields=["revoked_at"])  # one by one: each save invalidates its cached lookup
    api_keys_of_user_revoke(user=user, reason="account_claimed")
    invitations_beyond_role_cancel(organization=None, access=Access.system(), user_id=user.id, role=None,
                                   reason="account_claimed")  # fmt: skip
    user.set_password(password)
    user.email_verified_at = timezone.now()
    fields = ["password", "email_verified_at", "updated_at"]
    if name is not None and name.strip():
        user.name = name.strip()
        fields.append("name")
    user.save(update_fields=fields)


def verification_email_send(*, verification_id: int) -> bool:
    """Send the link at most once (public_app.mail.send_once)."""
    from django.core.mail import EmailMessage

    def build() -> EmailMessage | None:
        verification = EmailVerification.objects.filter(id=verification_id).first()
        if (
            verification is None
            or verification.email_sent_at is not None
            or verification.used_at is not None
            or verification.expires_at <= timezone.now()
        ):
            return None
        return EmailMessage(subject=_subject(verification), body=_body(verification),
                            from_email=settings.DEFAULT_FROM_EMAIL, to=[verification.email])  # fmt: skip

    def record() -> None:
        EmailVerification.objects.filter(id=verification_id).update(email_sent_at=timezone.now())

    verification_uid = EmailVerification.objects.filter(id=verification_id).values_list("uid", flat=True).first()
    return send_once(f"verification:{verification_id}", build, msg_id=message_id(str(verification_uid)),
                     on_sent=record)  # fmt: skip


def _subject(verification: EmailVerification) -> str:
    if verification.user_id is None:
        return "Someone tried to sign up with your email address"
    return "Confirm your email address"


def _body(verification: EmailVerification) -> str:
    link, hours = verification_link(verification), settings.EMAIL_VERIFICATION_TTL_HOURS
    if verification.user_id is None:
        return (
            "Someone just tried to create an account with this address. An account that was never confirmed "
            "already uses it.\n\n"
            "If you want that account, follow this link: you will choose its password, the address will be "
            "confirmed, and every earlier sign-in and API key of the account will end:\n\n"
            f"{link}\n\n"
            f"It works once, for {hours} hours. If it was not you, ignore this email: nothing changes without the "
            "link, and nobody else can use it.\n"
        )
    return (
        "Follow this link to confirm that this address is yours:\n\n"
        f"{link}\n\n"
        f"It works once, for {hours} hours. If you did not sign up, ignore this email: nothing happens without the "
        "link.\n"
    )


def require_verified_email(user: User | Account) -> None:
    """Anything granted by email address alone (invitations listed, accepted or declined by id) needs it."""
    if user.email_verified_at is None:
        raise errors.PermissionDenied(
            "Confirm your email address first: follow the link we sent to it (or ask for a new one).",
            code="email_not_verified",
        )
