"""Email verification: nothing is granted by email address until its owner has followed a link sent to it.

Sign-up sends a link to the new account's address. An account whose address is not verified can sign in and use
the organizations it created or joined with an emailed invitation link, but sees no invitations by address and
cannot hold an address against its owner: a later sign-up with the same address gets a link of its own, and
following it retires the unverified account (its sessions end, the address is released) and creates the new one.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.bruteforce import guard_check, guard_failed
from public_app.models import AuthToken, EmailVerification, User
from public_app.outbox import enqueue
from public_app.ratelimit import ratelimit_hit
from public_app.secrets import derived_token, hash_secret, hashes_match

TOKEN_PREFIX = "ev_"  # noqa: S105 - a prefix, not a secret


def verification_token(verification: EmailVerification) -> str:
    return derived_token(TOKEN_PREFIX, "email-verification-token", f"{verification.uid}:{verification.token_salt}")


def verification_link(verification: EmailVerification) -> str:
    return f"{settings.FRONTEND_URL}/verify-email/{verification_token(verification)}"


def email_verification_start(
    *, email: str, user: User | None = None, name: str = "", password_hash: str = ""
) -> EmailVerification:
    """Record a link for `email` and send it after commit (by a job). At most a few per address an hour, so the
    sign-up form cannot be used to flood somebody's inbox."""
    ratelimit_hit(f"verify-email:{email}", limit=settings.RATELIMIT_VERIFICATION_EMAILS_PER_HOUR, window=3600)
    verification = EmailVerification(
        email=email, user=user, name=name, password=password_hash, token_salt=secrets.token_hex(32),
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
    if verification.used_at is not None:
        raise errors.Gone("This verification link was already used.", code="verification_used")
    if verification.expires_at <= timezone.now():
        raise errors.Gone("This verification link has expired.", code="verification_expired")
    return verification


def user_mark_verified(*, user: User) -> None:
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at", "updated_at"])


@transaction.atomic
def email_verify(*, token: str, ip: str | None = None) -> tuple[User, bool]:
    """Follow a link. Returns the verified user and whether it was created now (a claim), in which case the caller
    issues it a token."""
    verification = _by_token(token, ip)
    verification.used_at = timezone.now()
    verification.save(update_fields=["used_at", "updated_at"])
    if verification.user is not None:
        user = User.objects.select_for_update().get(id=verification.user_id)
        if user.email != verification.email:
            raise errors.Gone("The account's email has changed since this link was sent.", code="verification_expired")
        user_mark_verified(user=user)
        return user, False
    holder = User.objects.select_for_update().filter(email=verification.email).first()
    if holder is not None:
        if holder.email_verified_at is not None:
            raise errors.Conflict("An account with this email already exists.", code="email_taken")
        _retire_unverified(holder)
    user = User(email=verification.email, name=verification.name, password=verification.password,
                email_verified_at=timezone.now())  # fmt: skip
    user.save()
    return user, True


def _retire_unverified(user: User) -> None:
    """The address was claimed by its verified owner: end every session of the squatting account and release the
    address (the account keeps nothing it could use; its rows stay for the audit trail)."""
    for auth_token in AuthToken.objects.filter(user=user, revoked_at__isnull=True):
        auth_token.revoked_at = timezone.now()
        auth_token.save(update_fields=["revoked_at"])  # one by one: each save invalidates its cached lookup
    user.email = f"{user.uid}@retired.invalid"
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["email", "is_active", "password", "updated_at"])
    _organizations_of_retired_delete(user)


def _organizations_of_retired_delete(user: User) -> None:
    """An organization nobody else belongs to would stay forever, owned by an account that can never sign in again
    (and hold its slug): schedule its deletion like an owner's DELETE (restorable by staff until the grace period
    ends). Organizations with other members are left to them; the retired account's membership stays for the audit
    trail and grants nothing (the account is inactive)."""
    from public_app.access import SYSTEM_ACTOR
    from public_app.models import Membership, OrganizationStatus
    from public_app.services.organizations import organization_delete

    for membership in Membership.objects.filter(user=user).select_related("organization"):
        organization = membership.organization
        if organization.status == OrganizationStatus.DELETING:
            continue
        if not Membership.objects.filter(organization=organization).exclude(user=user).exists():
            organization_delete(organization=organization, actor=SYSTEM_ACTOR)


def verification_email_send(*, verification_id: int) -> bool:
    """Send the link at most once (claimed under a row lock, like invitation emails)."""
    from django.core.mail import EmailMessage

    with transaction.atomic():
        verification = EmailVerification.objects.select_for_update().filter(id=verification_id).first()
        if (
            verification is None
            or verification.email_sent_at is not None
            or verification.used_at is not None
            or verification.expires_at <= timezone.now()
        ):
            return False
        EmailMessage(
            subject="Confirm your email address",
            body=(
                "Follow this link to confirm that this address is yours:\n\n"
                f"{verification_link(verification)}\n\n"
                f"It works once, for {settings.EMAIL_VERIFICATION_TTL_HOURS} hours. If you did not sign up, ignore "
                "this email: nothing happens without the link.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[verification.email],
            headers={"Message-ID": f"<{verification.uid}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"},
        ).send()
        verification.email_sent_at = timezone.now()
        verification.save(update_fields=["email_sent_at", "updated_at"])
    return True


def require_verified_email(user: User) -> None:
    """Anything granted by email address alone (invitations listed, accepted or declined by id) needs it."""
    if user.email_verified_at is None:
        raise errors.PermissionDenied(
            "Confirm your email address first: follow the link we sent to it (or ask for a new one).",
            code="email_not_verified",
        )
