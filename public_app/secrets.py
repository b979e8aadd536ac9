"""Random secrets shown once and stored as a hash (user tokens, API keys), and link tokens derived from a server key
(invitations, email verification) so that a job can rebuild the link while a copy of the database cannot."""

import base64
import hashlib
import hmac
import secrets


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """`prefix` + URL-safe random text; 32 bytes = 256 bits of randomness."""
    return prefix + secrets.token_urlsafe(nbytes)


def hash_secret(raw: str) -> str:
    # A fast hash is right here: the secrets are 256-bit random, so there is nothing to brute-force.
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def hashes_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def derived_token(prefix: str, purpose: str, message: str) -> str:
    """`prefix` + HMAC-SHA256(key for `purpose` from SECRET_KEY, `message`), URL-safe. Rotating SECRET_KEY
    invalidates every such token."""
    from django.conf import settings

    key = hashlib.sha256(f"{purpose}:".encode() + settings.SECRET_KEY.encode()).digest()
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")


# The visible prefixes of the credentials (what a leaked-secret scanner and a reader of logs recognise).
USER_TOKEN_PREFIX = "ut_"  # noqa: S105 - a prefix, not a secret
API_KEY_PREFIX = "ak_"
