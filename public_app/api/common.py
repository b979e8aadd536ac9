"""Small helpers shared by the routers: who is calling, from where."""

from django.conf import settings
from django.http import HttpRequest

from public_app import errors
from public_app.access import Actor
from public_app.models import User
from public_app.selectors import user_get
from public_app.tenancy import public_context


def client_ip(request: HttpRequest) -> str | None:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def request_user(request: HttpRequest) -> User:
    principal = request.auth  # type: ignore[attr-defined]
    if not principal.is_user:
        raise errors.NotAuthenticated()
    with public_context():  # also called from tenant operations, whose role cannot read users
        user = user_get(user_id=principal.user_id)
    if user is None:
        raise errors.NotAuthenticated()
    return user


def request_user_or_none(request: HttpRequest) -> User | None:
    """The signed-in user, or None when an API key is calling."""
    return request_user(request) if request.auth.is_user else None  # type: ignore[attr-defined]


def request_actor(request: HttpRequest, user: User | None = None) -> Actor:
    principal = request.auth  # type: ignore[attr-defined]
    if not principal.is_user:
        return Actor(type="api_key", id=principal.uid, label=principal.label, ip=client_ip(request))
    user = user or request_user(request)
    return Actor(type="user", id=user.uid, label=user.email, ip=client_ip(request))
