"""Sign-up, log-in, log-out and bearer-token authentication for users."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, get_hasher, identify_hasher, make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from public_app import errors
from public_app.bruteforce import guard_check, guard_failed, guard_succeeded
from public_app.models import AuthToken, User, normalize_email
from public_app.ratelimit import ratelimit_hit
from public_app.secrets import USER_TOKEN_PREFIX, hash_secret, new_secret
from public_app.services.verification import (
    email_verification_claim_start,
    email_verification_start,
    password_validate,
)

TOKEN_PREFIX = USER_TOKEN_PREFIX

# Hashing a throwaway password when the email is unknown keeps login timing the same whether or not it exists.
_DUMMY_PASSWORD_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_PASSWORD_HASH
    if _DUMMY_PASSWORD_HASH is None:
        _DUMMY_PASSWORD_HASH = make_password(new_secret(""))
    return _DUMMY_PASSWORD_HASH


def _validate_email(email: str) -> str:
    normalized = normalize_email(email)
    try:
        validate_email(normalized)
    except DjangoValidationError:
        raise errors.ValidationFailed.for_field("email", "Enter a valid email address.") from None
    return normalized


def token_issue(*, user: User) -> str:
    raw = new_secret(TOKEN_PREFIX)
    AuthToken.objects.create(
        user=user,
        key_hash=hash_secret(raw),
        expires_at=timezone.now() + timedelta(days=settings.AUTH_TOKEN_TTL_DAYS),
    )
    return raw


def user_signup(*, email: str, password: str, name: str, ip: str | None = None) -> tuple[User | None, str | None]:
    """A new account (and a token) with a verification link sent to its address. When an account whose address
    was never verified holds the address, no account is made (None, None): a claim link goes to the address, and
    whoever follows it takes that account with a password chosen then (public_app.services.verification). What was
    typed here is not kept. A verified address is taken (409)."""
    ratelimit_hit(f"signup:{ip}", limit=settings.RATELIMIT_SIGNUP_PER_HOUR, window=3600)
    normalized = _validate_email(email)
    candidate = User(email=normalized, name=name.strip())
    password_validate(password, candidate)
    candidate.set_password(password)
    holder = User.objects.filter(email=normalized).first()
    if holder is not None:
        if holder.email_verified_at is not None or not holder.is_active:
            raise errors.Conflict("An account with this email already exists.", code="email_taken")
        email_verification_claim_start(email=normalized, ip=ip)
        return None, None
    try:
        with transaction.atomic():
            candidate.save()
            token = token_issue(user=candidate)
            email_verification_start(email=normalized, user=candidate)
    except IntegrityError:
        raise errors.Conflict("An account with this email already exists.", code="email_taken") from None
    return candidate, token


def user_login(*, email: str, password: str, ip: str | None = None) -> tuple[User, str]:
    account = normalize_email(email)[:254]
    ratelimit_hit(f"login:{account}:{ip}", limit=settings.RATELIMIT_LOGIN_PER_MINUTE, window=60)
    guard_check("login", account=account, ip=ip)
    user = User.objects.filter(email=account, is_active=True).first()
    if user is None:
        # Same work as a real check, so timing does not reveal whether the email has an account.
        User(password=_dummy_hash()).check_password(password)
        guard_failed("login", account=account, ip=ip)
        raise errors.NotAuthenticated("Wrong email or password.", code="invalid_credentials")
    checked = user.password
    # Checked against the hash as read, without Django's setter: `User.check_password` re-hashes and saves an
    # outdated hash, which outside the lock would overwrite a password a claim just set (and pass the re-check).
    if not check_password(password, checked):
        guard_failed("login", account=account, ip=ip)
        raise errors.NotAuthenticated("Wrong email or password.", code="invalid_credentials")
    guard_succeeded("login", account=account, ip=ip)
    with transaction.atomic():
        # The password was checked without a lock (Argon2 is slow): issue the token only if it is still the
        # account's password, under the row lock a claim or a password change holds while it ends every session.
        # Otherwise a login racing a claim would keep a session in an account that just changed hands.
        user = User.objects.select_for_update().filter(id=user.id, is_active=True).first()
        if user is None or user.password != checked:
            raise errors.NotAuthenticated("Wrong email or password.", code="invalid_credentials")
        hasher = identify_hasher(checked)
        if hasher.algorithm != get_hasher().algorithm or hasher.must_update(checked):  # now that it is unchanged
            user.set_password(password)
            user.save(update_fields=["password"])
        return user, token_issue(user=user)


def token_revoke(*, token_id: int) -> None:
    token = AuthToken.objects.filter(id=token_id, revoked_at__isnull=True).first()
    if token is not None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
