"""Words for the OpenAPI document: a description and an example for every property and parameter.

A property's text is looked up by `Schema.property`, then by property name; the object a schema describes (its
noun, and the prefix of its ids) comes from its name. A schema field that has its own `description` keeps it. The
test suite fails when a property or parameter is left without one (tests/config/test_openapi.py).
"""

import re
from typing import Any

# Schema name prefix → (noun, id prefix); the longest matching prefix wins.
_OBJECTS: dict[str, tuple[str, str]] = {
    "User": ("user", "usr"),
    "Inviter": ("user who invited", "usr"),
    "MemberUser": ("member's user", "usr"),
    "ApiKeyCreator": ("member the key answers to", "usr"),
    "MyInvitation": ("invitation", "inv"),
    "Invitation": ("invitation", "inv"),
    "Invoice": ("invoice", "in"),
    "Organization": ("organization", "org"),
    "MyOrganization": ("organization", "org"),
    "Deletion": ("organization", "org"),
    "ApiKey": ("API key", "key"),
    "Agent": ("agent", "agt"),
    "Campaign": ("campaign", "cmp"),
    "Lead": ("lead", "led"),
    "PhoneNumber": ("phone number", "pn"),
    "Endpoint": ("webhook endpoint", "whk"),
    "Delivery": ("webhook delivery", "whd"),
    "AuditEntry": ("audit log entry", "aud"),
    "Plan": ("plan", "plan"),
    "Billing": ("subscription", "sub"),
    "Member": ("membership", "usr"),
    "Verification": ("verification", "ev"),
    "Verified": ("verification", "ev"),
    "Actor": ("actor", "usr"),
    "Target": ("target", "usr"),
    "Leadsforce": ("integration", "int"),
    "Page": ("page", "page"),
    "Signup": ("new account", "usr"),
    "Login": ("account", "usr"),
    "Domain": ("domain", "dom"),
    "JoinRequestOrganization": ("organization", "org"),
    "JoinRequest": ("join request", "jr"),
    "DnsRecord": ("DNS record", "dom"),
    "Suggestion": ("suggestion", "org"),
    "Role": ("role", "rol"),
    "ScimToken": ("SCIM token", "sct"),
    "Directory": ("directory", "sct"),
    "GroupRole": ("group mapping", "sct"),
}

_NULL_IN_REPLAY = " Null in a replay of this response (`Idempotent-Replayed: true`): secrets are never stored."
_EXAMPLE_ULID = "01jdq3v8k2m4n6p8r0s2t4v6w8"

# Property name → (description, example). `{noun}` and `{prefix}` are filled in from the schema's object.
_BY_NAME: dict[str, tuple[str, Any]] = {
    "domain": ("The email domain (lower case, IDNA).", "acme.com"),
    "join_requests_open": ("Anyone signed in with a verified address may ask to join by slug (otherwise only "
                           "people at one of its verified domains).", False),
    "message": ("The requester's note for the admins.", "I'm on the sales team."),
    "decided_at": ("When it was approved, declined or withdrawn (null: pending).", None),
    "policy": ("`off`: verified only; `suggest`: people with a verified address there see the organization in "
               "`/me/suggestions` and may join; `auto_join`: they become members when their address is verified.",
               "suggest"),
    "default_role": ("The role people join with by this domain (never `owner`).", "member"),
    "verified_at": ("When the DNS record was found (null: pending).", "2026-11-28T17:00:00Z"),
    "last_checked_at": ("When the record was last looked up.", "2026-11-28T17:00:00Z"),
    "value": ("The record's text.", "orgs-verification=3f2a9c0e5b7d4a1e8c6f0b2d4e6a8c0e"),
    "id": ("Opaque id of the {noun} (`{prefix}_…`), unique across all organizations.", "{prefix}_" + _EXAMPLE_ULID),
    "created_at": ("When the {noun} was created (UTC).", "2026-11-28T17:00:00.123456Z"),
    "updated_at": ("When the {noun} last changed (UTC).", "2026-11-29T09:30:00Z"),
    "name": ("Name of the {noun}, as people see it (1-200 characters, trimmed).", "Acme Outbound"),
    "status": ("Where the {noun} stands; one of the listed values.", None),
    "email": ("Email address of the {noun}.", "ada@example.com"),
    "role": ("Role in the organization: a built-in one (`owner` > `admin` > `member`, plus `billing`) or one of the "
             "organization's custom roles (`GET /organizations/{slug}/roles`).", "member"),
    "slug": ("The organization's slug: its address in every path (3-48 of `a-z`, `0-9`, `-`).", "acme"),
    "items": (
        "The objects on this page, in the list's order (newest first unless the operation says otherwise).",
        None,
    ),
    "next_cursor": ("Pass as `cursor` to get the next page; null on the last page.", "eyJpZCI6IDQyfQ"),
    "label": ("A human-readable name for the {noun}.", "Front desk"),
    "type": ("What kind of {noun} this is.", "user"),
    "agent_id": ("Id of the agent (`agt_…`) in this organization, or null.", "agt_" + _EXAMPLE_ULID),
    "campaign_id": ("Id of the campaign (`cmp_…`) in this organization, or null.", "cmp_" + _EXAMPLE_ULID),
    "account_name": ("The Leadsforce account the stored key belongs to.", "Acme Sales"),
    "action": ("What happened, as `<resource>.<verb>`.", "member.role_changed"),
    "actor": ("Who did it: a user or an API key.", None),
    "target": ("What it was done to.", None),
    "amount_due": ("Amount due, in the currency's minor units (cents).", 4900),
    "api_key": (
        "The Leadsforce API key; checked with Leadsforce, then stored encrypted (never shown again).",
        "lf_live_4f1c2b9e0d8a",
    ),
    "attempts": ("How many times delivery was attempted so far.", 1),
    "billing_email": ("Where invoices go; empty when unset.", "billing@example.com"),
    "brand": ("Card brand.", "visa"),
    "last4": ("Last four digits of the card.", "4242"),
    "cancel_at_period_end": ("True when the subscription ends at `current_period_end` instead of renewing.", False),
    "cancel_url": (
        "Where Stripe Checkout sends the user back when they cancel (http or https URL).",
        "https://app.example.com/settings/billing",
    ),
    "success_url": (
        "Where Stripe Checkout sends the user after paying (http or https URL).",
        "https://app.example.com/settings/billing?done=1",
    ),
    "return_url": (
        "Where the Stripe Billing Portal sends the user back (http or https URL).",
        "https://app.example.com/settings/billing",
    ),
    "code": ("Plan code: what `plan` fields hold.", "pro"),
    "connected": ("True when a Leadsforce API key is stored.", True),
    "connected_at": ("When the integration was connected; null when it is not.", "2026-11-28T17:00:00Z"),
    "created": ("When Stripe created the invoice (UTC).", "2026-11-01T00:00:00Z"),
    "currency": ("ISO 4217 currency code, lowercase.", "usd"),
    "current_period_end": ("When the billing period ends; null without a subscription.", "2026-12-31T00:00:00Z"),
    "data": ("More about the change: the fields before and after, or what was created.", {"role": "admin"}),
    "description": ("Free text for your own reference (at most 200 characters).", "CRM sync"),
    "disabled_reason": ("Why the endpoint was disabled (after repeated failures), or empty.", ""),
    "e164": ("The phone number in E.164 form, `+` and up to 15 digits.", "+14155550123"),
    "email_verified": ("True once the user confirmed their email address.", True),
    "enabled": ("False when the endpoint is paused; no deliveries are made to it then.", True),
    "starts_at": ("When the campaign starts (UTC), or null.", "2026-12-01T09:00:00Z"),
    "ends_at": ("When the campaign ends (UTC), or null; after `starts_at`.", "2026-12-31T17:00:00Z"),
    "event": ("The event type delivered.", "member.added"),
    "event_id": ("The event's id (`evt_…`), also sent as the `webhook-id` header.", "evt_" + _EXAMPLE_ULID),
    "events": ("Event types delivered to this endpoint (at least one).", ["member.added", "lead.created"]),
    "expires_at": ("When the {noun} stops working (UTC); null for never.", "2026-12-08T17:00:00Z"),
    "expires_in_days": ("Days until the invitation link expires (1-30, default 7).", 7),
    "first_name": ("The lead's first name.", "Ada"),
    "last_name": ("The lead's last name.", "Lovelace"),
    "hosted_invoice_url": ("Stripe's page for this invoice.", "https://invoice.stripe.com/i/acct_1/test_1"),
    "pdf_url": ("The invoice as a PDF.", "https://pay.stripe.com/invoice/acct_1/test_1/pdf"),
    "imported": ("How many leads were created.", 2),
    "interval": ("How often the plan is billed.", "month"),
    "invited_by": ("The member who sent the invitation.", None),
    "ip": ("The IP address the request came from, when known.", "203.0.113.7"),
    "joined_at": ("When the user became a member.", "2026-11-28T17:00:00Z"),
    "deactivated_at": ("When the member was deactivated (null: active).", None),
    "key": (
        "The full API key. Shown only in this response: store it now." + _NULL_IN_REPLAY,
        "ak_3f6c1e9a8b2d4c7e9f0a1b2c3d4e5f60",
    ),
    "language": ("BCP 47 language tag the agent speaks.", "en-US"),
    "last_accessed_at": ("When you last used this organization (the switcher's order).", "2026-11-29T09:30:00Z"),
    "last_error": ("What went wrong on the last attempt, or empty.", ""),
    "last_sync_at": ("When leads were last synced from Leadsforce, or null.", "2026-11-29T09:30:00Z"),
    "last_sync_error": ("What went wrong on the last sync, or empty.", ""),
    "last_used_at": ("When the key was last used, or null.", "2026-11-29T09:30:00Z"),
    "logo_url": ("Address of the organization's logo, or null.", "https://cdn.example.com/logos/acme.png"),
    "max_seats": ("Most members (plus pending invitations) the plan allows; null for no cap.", 5),
    "next_attempt_at": ("When the next attempt is due; null once it succeeded or gave up.", "2026-11-28T17:05:00Z"),
    "number": ("The invoice number.", "ACME-0001"),
    "organization": ("The organization.", None),
    "password": (
        "The password (at least 8 characters, not common, not all digits, not like the email).",
        "correct horse battery",
    ),
    "payment_method": ("The card on file, or null.", None),
    "phone": ("The lead's phone number in E.164 form, or empty.", "+14155550123"),
    "plan": ("Plan code (see `GET /plans`).", "pro"),
    "prefix": ("The visible start of the key, to recognise it.", "ak_3f6c1e9a"),
    "prompt": ("The agent's instructions (at most 20,000 characters).", "You are a friendly receptionist."),
    "purge_at": ("When the organization's data will be purged; null unless it is being deleted.", None),
    "response_body": ("The start of the receiver's response body.", "ok"),
    "response_status": ("The HTTP status the receiver answered with, or null.", 200),
    "seats_billed": ("Seats Stripe bills for; follows `seats_used` within seconds.", 3),
    "seats_used": ("Members of the organization.", 3),
    "secret": (
        "The signing secret (`whsec_…`) for `webhook-signature`. Shown only in this response." + _NULL_IN_REPLAY,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    "source": ("How the lead came in.", "manual"),
    "timezone": ("IANA time zone name.", "Europe/Paris"),
    "token": (
        "A bearer token: send it as `Authorization: Bearer <token>`." + _NULL_IN_REPLAY,
        "ut_3f6c1e9a8b2d4c7e9f0a1b2c3d4e5f60",
    ),
    "url": ("The address.", "https://hooks.example.com/orgs"),
    "user": ("The user.", None),
    "voice": ("The voice the agent speaks with.", "alloy"),
    "website": ("The organization's website (http or https), or empty.", "https://acme.example.com"),
}

# Where a property means something else in one schema.
_BY_SCHEMA: dict[str, tuple[str, Any]] = {
    "RoleUpdateIn.permissions": ("The role's new permissions, all of them (from `GET /permissions`; `org:read` is "
                                 "always included).", ["org:read", "tenant:data"]),
    "RoleUpdateIn.name": ("The role's new name, as people see it.", "Support"),
    "RoleUpdateIn.description": ("What the role is for.", "Answers customers"),
    "VerifyEmailIn.token": ("The token from the verification email's link.", "3f6c1e9a8b2d4c7e9f0a1b2c3d4e5f60"),
    "VerifyEmailIn.name": ("Your name, if you want to change the one given at signup.", "Ada Lovelace"),
    "VerifyEmailIn.password": ("Your password, when the verification also signs you in.", "correct horse battery"),
    "VerificationSentOut.status": ("`verification_sent`: check the inbox of `email`.", "verification_sent"),
    "VerificationSentOut.email": ("Where the verification email went.", "ada@example.com"),
    "UrlOut.url": (
        "Send the user's browser here (Stripe Checkout or the Billing Portal).",
        "https://checkout.stripe.com/c/pay/cs_test_1",
    ),
    "ActorOut.type": ("`user`, `api_key`, `system` or `directory` (a SCIM token).", "user"),
    "ActorOut.id": ("The user's (`usr_…`) or API key's (`key_…`) id.", "usr_" + _EXAMPLE_ULID),
    "ActorOut.label": ("The user's email or the API key's name.", "ada@example.com"),
    "TargetOut.type": ("What kind of object the change was made to.", "member"),
    "TargetOut.id": ("The object's id.", "usr_" + _EXAMPLE_ULID),
    "TargetOut.label": ("The object's name, email or slug.", "grace@example.com"),
    "InvoiceOut.status": ("Stripe's invoice status: draft, open, paid, uncollectible or void.", "paid"),
    "InvoiceOut.id": ("Stripe's invoice id.", "in_1QZ2X3Y4Z5"),
    "BillingOut.status": (
        "The subscription's Stripe status (`active`, `trialing`, `past_due`, …) or `free`.",
        "active",
    ),
    "EndpointOut.url": ("Where events are POSTed (https, or http where allowed).", "https://hooks.example.com/orgs"),
    "PlanOut.name": ("The plan's name, as shown on the pricing page.", "Pro"),
    "PlanOut.price_per_seat": ("Price per seat per interval, in minor units.", 1500),
    "OrganizationNameOut.name": ("The organization's name.", "Acme"),
    "MemberUpdateIn.role": ("The new role.", "admin"),
    "LeadsforceConnectIn.api_key": _BY_NAME["api_key"],
    "DeletionOut.status": ("`deleting`.", "deleting"),
    "DeletionOut.purge_at": (
        "When the data is purged unless an owner restores the organization first.",
        "2026-12-08T17:00:00Z",
    ),
}

_PARAMETERS: dict[str, str] = {
    "slug": "The organization's slug (a former slug answers 308 to the current one for 90 days, members only).",
    "limit": "How many items per page, 1-200 (default 50).",
    "cursor": "`next_cursor` from the previous page; omit for the first page.",
    "token": "The token from the invitation email's link.",
    "user_id": "The member's user id (`usr_…`).",
    "invitation_id": "The invitation's id (`inv_…`).",
    "key_id": "The API key's id (`key_…`).",
    "agent_id": "The agent's id (`agt_…`).",
    "campaign_id": "The campaign's id (`cmp_…`).",
    "lead_id": "The lead's id (`led_…`).",
    "number_id": "The phone number's id (`pn_…`).",
    "webhook_id": "The webhook endpoint's id (`whk_…`).",
    "domain_id": "The claimed domain's id (`dom_…`).",
    "join_request_id": "The join request's id (`jr_…`).",
    "key": "The role's key (`admin`, or a custom role's such as `support`).",
    "scim_token_id": "The SCIM token's id (`sct_…`).",
    "org_slug": "The suggested organization's slug.",
    "status": "Only objects with this status.",
    "source": "Only leads that came in this way.",
    "action": "Only entries with this action (`member.added`, ...).",
    "actor": "Only entries by this actor's id (`usr_…` or `key_…`).",
    "created_after": "Only objects created after this instant (ISO 8601 with an offset).",
    "api_keys_to": "Hand the leaving member's API keys to this member (`usr_…`) instead of revoking them.",
}


def _object_of(schema_name: str) -> tuple[str, str]:
    base = re.sub(r"^Page_(.+)_$", r"\1", schema_name)
    best = ("object", "obj")
    best_len = 0
    for prefix, found in _OBJECTS.items():
        if base.startswith(prefix) and len(prefix) > best_len:
            best, best_len = found, len(prefix)
    return best


def _fill(value: Any, noun: str, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace("{noun}", noun).replace("{prefix}", prefix)
    return value


def property_text(schema_name: str, prop: str) -> tuple[str, Any] | None:
    found = _BY_SCHEMA.get(f"{schema_name}.{prop}") or _BY_NAME.get(prop)
    if found is None:
        return None
    noun, prefix = _object_of(schema_name)
    return _fill(found[0], noun, prefix), _fill(found[1], noun, prefix)


def describe_schemas(schemas: dict[str, Any]) -> None:
    """Give every property of every component schema a description and, where known, an example."""
    for name, schema in schemas.items():
        for prop, details in schema.get("properties", {}).items():
            found = property_text(name, prop)
            if found is None:
                continue
            text, example = found
            details.setdefault("description", text)
            if example is not None and "examples" not in details and "$ref" not in details:
                details["examples"] = [example]


def example_for_schema(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> Any:
    """An example value for a schema, from its own examples, enums and property examples."""
    if depth > 6:
        return None
    if "$ref" in schema:
        return example_for_schema(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, depth + 1)
    if schema.get("examples"):
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [option for option in schema.get(key, []) if option.get("type") != "null"]
        if options:
            return example_for_schema(options[0], schemas, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {prop: example_for_schema(details, schemas, depth + 1)
                for prop, details in schema.get("properties", {}).items()}  # fmt: skip
    if kind == "array":
        item = example_for_schema(schema.get("items", {}), schemas, depth + 1)
        return [] if item is None else [item]
    if kind == "string":
        return {"date-time": "2026-11-28T17:00:00Z", "email": "ada@example.com", "uri": "https://example.com"}.get(
            schema.get("format", ""), "text"
        )
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "boolean":
        return True
    return None


def parameter_text(name: str) -> str:
    return _PARAMETERS.get(name, "")
