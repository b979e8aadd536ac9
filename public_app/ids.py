"""Opaque public identifiers: `<prefix>_<26 chars>`, time-ordered (48-bit ms clock + 80 random bits, Crockford base32).

Internal primary keys stay BigAutoField; these are what the API shows, so ids are not enumerable and never reveal
how many rows exist. The prefix says what kind of object an id names, so an id given in the wrong place (a campaign's
id as `agent_id`) is refused instead of matching some other row; every prefix is listed here, once.
"""

import re
import secrets
import time
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

# Public schema.
USER, ORGANIZATION, TOKEN, INVITATION, API_KEY, VERIFICATION = "usr", "org", "tok", "inv", "key", "ev"
DOMAIN, JOIN_REQUEST, ROLE = "dom", "jr", "rol"
SCIM_TOKEN, DIRECTORY_USER, DIRECTORY_GROUP = "sct", "scu", "scg"
# Tenant schemas (each organization's own rows): unique across every schema, not only within one.
AGENT, CAMPAIGN, LEAD, PHONE_NUMBER = "agt", "cmp", "led", "pn"
WEBHOOK, WEBHOOK_DELIVERY, EVENT, AUDIT_ENTRY = "whk", "whd", "evt", "aud"
# Webhook endpoints created before the tenant ids (issue 16) have `we_` ids; they keep them (clients, audit entries
# and event payloads hold them), so an endpoint id is either prefix.
WEBHOOK_LEGACY = "we"


def new_ulid(at: datetime | None = None) -> str:
    """26 characters: the time in ms (now, or `at` for rows that existed before they had an id), then 80 random
    bits; sorting the text sorts by that time."""
    ms = int((at.timestamp() if at is not None else time.time()) * 1000)
    ms = min(max(ms, 0), (1 << 48) - 1)  # 48 bits: 1970 to the year 10889
    value = (ms << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_uid(prefix: str, at: datetime | None = None) -> str:
    return f"{prefix}_{new_ulid(at)}"


def uid_pattern(prefix: str) -> str:
    """The regular expression an id of this kind matches (shown in the OpenAPI schema)."""
    return rf"^{prefix}_[0-9a-z]{{26}}$"


def is_uid(value: object, prefix: str) -> bool:
    return isinstance(value, str) and re.fullmatch(uid_pattern(prefix), value) is not None


def user_uid() -> str:
    return new_uid(USER)


def organization_uid() -> str:
    return new_uid(ORGANIZATION)


def token_uid() -> str:
    return new_uid(TOKEN)


def invitation_uid() -> str:
    return new_uid(INVITATION)


def api_key_uid() -> str:
    return new_uid(API_KEY)


def verification_uid() -> str:
    return new_uid(VERIFICATION)


def agent_uid() -> str:
    return new_uid(AGENT)


def campaign_uid() -> str:
    return new_uid(CAMPAIGN)


def lead_uid() -> str:
    return new_uid(LEAD)


def phone_number_uid() -> str:
    return new_uid(PHONE_NUMBER)


def audit_entry_uid() -> str:
    return new_uid(AUDIT_ENTRY)
