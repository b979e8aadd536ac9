from django.conf import settings
from django.contrib import admin
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views.static import serve as static_serve

from config.api import api, error_response
from config.health import healthz, readyz
from config.metrics import metrics_view
from public_app.scim import not_found as scim_not_found


def serve_media(request: HttpRequest, path: str) -> HttpResponse | FileResponse:
    response = static_serve(request, path, document_root=settings.MEDIA_ROOT)
    # Names are content hashes: a new logo gets a new URL, so this one can be cached for good.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    return error_response(404, "not_found", "No such API endpoint.")


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's last resort, for exceptions outside the API's own handlers (middleware: idempotency records,
    sessions). Called inside the `except` block, so the exception is at hand: an unreachable database is a 503
    with Retry-After, in our error shape, never a stack trace."""
    import sys

    from config.api import database_unavailable_response, is_database_unavailable

    exc = sys.exc_info()[1]
    if exc is not None and is_database_unavailable(exc):
        return database_unavailable_response()
    return error_response(500, "internal_error", "Something went wrong on our side.")


handler500 = server_error


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    # Anything else under /api/ answers in the API's error shape, never Django's HTML page.
    re_path(r"^api(?:/(?P<rest>.*))?$", api_not_found),
    # Each organization's SCIM 2.0 service provider (public_app.scim), in SCIM's own shape.
    path("scim/v2/organizations/<slug:slug>/", include("public_app.scim")),
    re_path(r"^scim/(?P<rest>.*)$", scim_not_found),
    # Uploaded logos, when they live on the local filesystem (other storage backends serve their own URLs).
    re_path(r"^media/(?P<path>logos/[A-Za-z0-9_]+/[0-9a-f]+\.png)$", serve_media),
    path("healthz", healthz),
    path("metrics", metrics_view),
    path("readyz", readyz),
    # The hosted pages (public_app.pages): sign-up, sign-in, the emailed links, onboarding, dashboards.
    path("", include("public_app.pages")),
]
