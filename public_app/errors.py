"""The one error hierarchy. Services raise these; the API layer turns them into the body of API.md:
`{"code": ..., "message": ..., "details": ...}` with the status each class carries."""

from typing import Any


class ApplicationError(Exception):
    status = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(self.message)


class BadRequest(ApplicationError):
    status = 400
    code = "bad_request"


class NotAuthenticated(ApplicationError):
    status = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were missing, invalid or expired."


class PermissionDenied(ApplicationError):
    status = 403
    code = "permission_denied"
    default_message = "Your role does not allow this action."


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class Gone(ApplicationError):
    status = 410
    code = "gone"


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class ValidationFailed(ApplicationError):
    """422; `details` is a list of `{"field": ..., "message": ...}`."""

    status = 422
    code = "validation_error"
    default_message = "The request is not valid."

    @classmethod
    def for_field(cls, field: str, message: str) -> "ValidationFailed":
        return cls(message, details=[{"field": field, "message": message}])


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(ApplicationError):
    status = 503
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BadGateway(ApplicationError):
    status = 502
    code = "bad_gateway"
    default_message = "An upstream service failed."


class MovedPermanently(ApplicationError):
    """A renamed organization's former slug: 308 to the same path under the current slug (method preserved)."""

    status = 308
    code = "moved_permanently"
    default_message = "This organization has a new slug."

    def __init__(self, location: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.location = location


# Every error code the API answers with: its status and what it means. The OpenAPI document lists, per operation,
# the codes it can answer (config/openapi.py); the test suite checks each error it receives against that list.
CODES: dict[str, tuple[int, str]] = {
    "moved_permanently": (308, "the organization was renamed; the same request goes to `Location`"),
    "bad_request": (400, "the request could not be processed"),
    "invalid_json": (400, "the body is not valid JSON"),
    "invalid_signature": (400, "the `Stripe-Signature` header does not verify"),
    "invalid_event": (400, "the Stripe event could not be read"),
    "not_authenticated": (401, "the bearer token is missing, invalid, expired, or of the wrong kind"),
    "invalid_credentials": (401, "wrong email or password (the same answer whether or not the email exists)"),
    "permission_denied": (403, "your role (or an API key) does not allow this"),
    "role_escalation": (403, "nobody acts on or grants a role above their own, nor gives a role a permission they "
                        "lack; only owners touch owners"),
    "role_too_high": (403, "an API key cannot be given a role above its creator's"),
    "last_owner": (403, "an organization always keeps at least one owner"),
    "invitation_email_mismatch": (403, "the invitation was sent to another email address"),
    "email_not_verified": (403, "verify your email address first"),
    "not_found": (404, "no such object, or not yours to see (organizations you are not a member of are 404 too)"),
    "conflict": (409, "the request conflicts with the current state"),
    "email_taken": (409, "an account with this email exists"),
    "slug_taken": (409, "another organization has (or recently had) this slug"),
    "role_exists": (409, "the organization has a role with this key already (built-in keys are taken)"),
    "role_builtin": (409, "built-in roles cannot be changed or deleted"),
    "role_in_use": (409, "members, invitations, API keys or domains hold the role; `details` names them"),
    "role_limit_reached": (409, "the organization has as many custom roles as it may (100)"),
    "member_deactivated": (409, "the member is deactivated; reactivate them first"),
    "domain_taken": (409, "this organization claimed the domain already, or another one verified it"),
    "domain_verification_required": (409, "verify the domain before giving it a policy"),
    "already_member": (409, "this person is already a member"),
    "invitation_pending": (409, "an invitation to this email is already pending"),
    "seat_limit_reached": (409, "the plan's seats are all taken by members and pending invitations"),
    "phone_number_taken": (409, "this organization already has this phone number"),
    "integration_not_connected": (409, "connect the integration first"),
    "idempotency_key_reused": (409, "this `Idempotency-Key` was used for a different request"),
    "idempotency_request_in_progress": (409, "the first request with this `Idempotency-Key` is still running"),
    "gone": (410, "this no longer exists"),
    "organization_deleted": (410, "the organization is being deleted (owners may still restore it)"),
    "invitation_expired": (410, "the invitation has expired"),
    "invitation_used": (410, "the invitation has been accepted already"),
    "invitation_cancelled": (410, "the invitation was cancelled"),
    "invitation_declined": (410, "the invitation was declined"),
    "verification_expired": (410, "the verification link has expired"),
    "verification_used": (410, "the verification link was used already"),
    "payload_too_large": (413, "the body is over the limit (1 MiB; 10 MiB for logos and imports)"),
    "uri_too_long": (414, "the request line is over the server's limit"),
    "request_header_fields_too_large": (431, "the request headers are over the server's limit"),
    "validation_error": (422, "the input is not valid; `details` lists `{field, message}`"),
    "webhook_url_forbidden": (422, "webhooks cannot target loopback, private or link-local addresses"),
    "domain_not_verified": (422, "the DNS TXT record was not found; `details` says what the lookup saw"),
    "leadsforce_rejected": (422, "Leadsforce refused this API key"),
    "rate_limited": (429, "too many requests; wait `Retry-After` seconds"),
    "internal_error": (500, "a fault on our side (logged with the request id); safe to retry with `Idempotency-Key`"),
    "bad_gateway": (502, "an upstream service failed"),
    "stripe_unavailable": (502, "Stripe could not complete the request; try again"),
    "leadsforce_unavailable": (502, "Leadsforce could not be reached; try again"),
    "service_unavailable": (503, "temporarily unavailable; try again after `Retry-After`"),
    "query_timeout": (503, "the request needed more than the organization's query budget; narrow it or retry later"),
    "database_unavailable": (503, "the database is unavailable; try again after `Retry-After`"),
    "organization_provisioning": (503, "the organization is still being set up; try again shortly"),
    "billing_not_configured": (503, "billing is not configured on this deployment"),
    "leadsforce_not_configured": (503, "the Leadsforce integration is not configured on this deployment"),
}

_PHRASES = {
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    409: "Conflict", 410: "Gone", 413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


def status_phrase(status: int) -> str:
    return _PHRASES.get(status, str(status))
