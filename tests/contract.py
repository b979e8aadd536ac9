"""Every error response a test receives is checked against the OpenAPI document: its status must be documented
for that operation, its `code` listed there, and its body the `Error` shape. A check in the request path of the test
process (installed by config/settings_test.py), so the whole suite guards the document; `contract_violations` is
emptied before each test and must be empty after it (tests/conftest.py)."""

import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse

contract_violations: list[str] = []


@cache
def _operations() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    from config.api import api

    document = api.get_openapi_schema()
    found = []
    for path, operations in document["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        for method, operation in operations.items():
            found.append((pattern, method.upper(), operation))
    # Literal segments before parameters: `/invitations/{id}/resend` is not `/invitations/{token}`.
    found.sort(key=lambda item: item[0].pattern.count("[^/]+"))
    return found


def operation_for(method: str, path: str) -> dict[str, Any] | None:
    for pattern, op_method, operation in _operations():
        if op_method == method and pattern.match(path):
            return operation
    return None


def check(method: str, path: str, status: int, body: bytes) -> str | None:
    """What is wrong with this response for the document, or None."""
    operation = operation_for(method, path)
    if operation is None or status < 300:
        return None
    name = operation["operationId"]
    documented = operation["responses"].get(status) or operation["responses"].get(str(status))
    if documented is None:
        return f"{name}: status {status} is not documented ({body[:200]!r})"
    if "x-error-codes" not in documented:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"{name}: {status} body is not JSON ({body[:200]!r})"
    if not isinstance(parsed, dict) or set(parsed) != {"code", "message", "details"}:
        return f"{name}: {status} body is not the Error shape ({body[:200]!r})"
    if parsed["code"] not in documented["x-error-codes"]:
        return f"{name}: {status} code {parsed['code']!r} is not listed (listed: {documented['x-error-codes']})"
    return None


class ContractCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/v1/") and not getattr(response, "streaming", False):
            problem = check(request.method or "", request.path, response.status_code, response.content)
            if problem:
                contract_violations.append(problem)
        return response
