"""Sessions, Django's authentication and messages serve the Django admin and the hosted pages (public_app.pages)
only: the API and SCIM authenticate with bearer tokens, and the health, metrics, media and static views need no
user. These subclasses (so Django's admin checks still find them) skip those paths, where each cost every request a
few hundredths of a millisecond for nothing (`bench/request_profile.py` measures each middleware)."""

from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest

# Paths that never use a session: bearer-token APIs and the operational endpoints.
SESSIONLESS = ("/api/", "/scim/", "/metrics", "/healthz", "/readyz", "/media/", "/static/")


def _sessionless(request: HttpRequest) -> bool:
    return request.path_info.startswith(SESSIONLESS)


class AdminSessionMiddleware(SessionMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if _sessionless(request):
            return self.get_response(request)
        return super().__call__(request)


class AdminAuthenticationMiddleware(AuthenticationMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if _sessionless(request):
            return self.get_response(request)
        return super().__call__(request)


class AdminMessageMiddleware(MessageMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if _sessionless(request):
            return self.get_response(request)
        return super().__call__(request)
