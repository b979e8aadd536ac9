"""Sessions, Django's authentication and messages serve the Django admin only: the API authenticates with bearer
tokens, and the health, metrics and docs views need no user. These subclasses (so Django's admin checks still find
them) skip everything outside `/admin/`, where each cost every request a few hundredths of a millisecond for
nothing (`bench/request_profile.py` measures each middleware)."""

from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest

ADMIN_PREFIX = "/admin/"


class AdminSessionMiddleware(SessionMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if not request.path_info.startswith(ADMIN_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class AdminAuthenticationMiddleware(AuthenticationMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if not request.path_info.startswith(ADMIN_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class AdminMessageMiddleware(MessageMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if not request.path_info.startswith(ADMIN_PREFIX):
            return self.get_response(request)
        return super().__call__(request)
