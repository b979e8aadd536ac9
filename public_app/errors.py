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
