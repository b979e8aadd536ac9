"""Random secrets shown once and stored as a hash (user tokens; later invitation tokens and API keys)."""

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
