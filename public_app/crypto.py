"""Encryption at rest for secrets we must be able to read back (webhook signing secrets, integration credentials).

Fernet (AES-128-CBC + HMAC-SHA256) with key rotation: FIELD_ENCRYPTION_KEYS is a comma-separated list of Fernet
keys; the first encrypts, all of them decrypt. To rotate, put a new key first, run
re-encrypt stored values with `reencrypt` (or on their next write), then drop the old key.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _keys() -> tuple[str, ...]:
    if settings.FIELD_ENCRYPTION_KEYS:
        return tuple(settings.FIELD_ENCRYPTION_KEYS)
    # Development default: a key derived from SECRET_KEY (production requires FIELD_ENCRYPTION_KEYS).
    derived = base64.urlsafe_b64encode(hashlib.sha256(b"field-encryption:" + settings.SECRET_KEY.encode()).digest())
    return (derived.decode(),)


def encrypt(plaintext: str) -> str:
    return _fernet(_keys()).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet(_keys()).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt: wrong or missing FIELD_ENCRYPTION_KEYS") from None


def reencrypt(ciphertext: str) -> str:
    """Re-encrypt under the first (current) key."""
    return _fernet(_keys()).rotate(ciphertext.encode()).decode()
