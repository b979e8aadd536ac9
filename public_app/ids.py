"""Opaque public identifiers: `<prefix>_<26 chars>`, time-ordered (48-bit ms clock + 80 random bits, Crockford base32).

Internal primary keys stay BigAutoField; these are what the API shows, so ids are not enumerable and never reveal
how many rows exist.
"""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_ulid() -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_uid(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def user_uid() -> str:
    return new_uid("usr")


def organization_uid() -> str:
    return new_uid("org")


def token_uid() -> str:
    return new_uid("tok")


def invitation_uid() -> str:
    return new_uid("inv")


def api_key_uid() -> str:
    return new_uid("key")


def verification_uid() -> str:
    return new_uid("ev")
