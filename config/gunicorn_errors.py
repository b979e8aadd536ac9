"""Errors gunicorn answers itself (a request line or headers over its limits, a malformed request) in the API's
error shape instead of its HTML page: they never reach Django, but a client of `/api/` must still get
`{"code", "message", "details"}` (API.md: never an HTML error page under `/api/`)."""

import json

from gunicorn import util

CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    # The detail gunicorn gives (the offending line or header) stays in its log: echoing it back would reflect
    # whatever the client sent.
    body = json.dumps({"code": CODES.get(status_int, "bad_request"), "message": reason, "details": None}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def install() -> None:
    """gunicorn's workers call `gunicorn.util.write_error` for these; replace it in each worker."""
    util.write_error = write_json_error
