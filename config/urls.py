from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path

from config.api import api, error_response
from config.health import healthz, readyz


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    return error_response(404, "not_found", "No such API endpoint.")


urlpatterns = [
    path("api/v1/", api.urls),
    # Anything else under /api/ answers in the API's error shape, never Django's HTML page.
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("healthz", healthz),
    path("readyz", readyz),
]
