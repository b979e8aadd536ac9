from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse


class PublicSchemaMiddleware:
    """Every request starts and ends in the `public` schema, even when the view raised.

    This only changes which search_path the next query will carry (config.db sends `SET search_path` lazily and only
    when it differs from what the connection has), so it costs no SQL by itself.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        try:
            return self.get_response(request)
        finally:
            connection.set_schema_to_public()
