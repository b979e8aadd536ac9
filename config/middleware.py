"""Guarantees for everything under /api/: bodies over the limit get 413, no error leaves as HTML, and the fair-share
headers (`RateLimit-Policy`, `RateLimit`) go on every answer to an authenticated request."""

import logging
from collections.abc import Callable
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

_CODES = {
    400: ("bad_request", "The request could not be processed."),
    401: ("not_authenticated", "Authentication credentials were missing, invalid or expired."),
    403: ("permission_denied", "You are not allowed to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "This method is not allowed on this path."),
    413: ("payload_too_large", "The request body is too large."),
    500: ("internal_error", "Something went wrong on our side."),
}


def _large_upload(path: str) -> bool:
    """Logo uploads and bulk imports may send up to 10 MiB (API.md); everything else 1 MiB."""
    return path.endswith(("/leads/import", "/logo"))


class ApiErrorShapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not (request.path == "/api" or request.path.startswith("/api/")):
            return self.get_response(request)
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        limit = settings.LARGE_UPLOAD_MAX_BYTES if _large_upload(request.path) else settings.API_BODY_MAX_BYTES
        if length > limit:
            return self._error(413)
        if "\x00" in request.path or "\x00" in unquote_plus(request.META.get("QUERY_STRING", "")):
            return JsonResponse(
                {"code": "validation_error", "message": "The request is not valid.",
                 "details": [{"field": None, "message": "NUL characters are not allowed."}]},
                status=422,
            )  # fmt: skip
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            return self._error(response.status_code, response)
        rate = getattr(request, "ratelimit", None)  # set by public_app.api.security.rate_check
        if rate is not None:
            for name, value in rate.headers().items():
                response[name] = value
        return response

    @staticmethod
    def _error(status: int, original: HttpResponse | None = None) -> JsonResponse:
        code, message = _CODES.get(status, ("error", "The request failed."))
        response = JsonResponse({"code": code, "message": message, "details": None}, status=status)
        if original is not None and original.has_header("Allow"):
            response["Allow"] = original["Allow"]
        return response
