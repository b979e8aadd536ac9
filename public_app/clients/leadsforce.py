"""The Leadsforce HTTP API (docs/leadsforce.md), behind one thin module. Only services call it."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings


class LeadsforceError(Exception):
    pass


class LeadsforceRejected(LeadsforceError):
    """The API key was refused (401/403)."""


class LeadsforceUnavailable(LeadsforceError):
    """Network trouble, a timeout, 429 or 5xx: worth retrying later."""


class LeadsforceNotConfigured(LeadsforceError):
    pass


@dataclass(frozen=True)
class Account:
    id: str
    name: str


def _client(api_key: str) -> httpx.Client:
    if not settings.LEADSFORCE_API_URL:
        raise LeadsforceNotConfigured("LEADSFORCE_API_URL is not set")
    return httpx.Client(
        base_url=settings.LEADSFORCE_API_URL.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        timeout=settings.LEADSFORCE_TIMEOUT_SECONDS,
        trust_env=False,
    )


def _get(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise LeadsforceUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code in (401, 403):
        raise LeadsforceRejected(f"Leadsforce refused the API key ({response.status_code})")
    if response.status_code != 200:
        raise LeadsforceUnavailable(f"Leadsforce answered {response.status_code}")
    try:
        data = response.json()
    except ValueError as exc:
        raise LeadsforceUnavailable("Leadsforce sent a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise LeadsforceUnavailable("Leadsforce sent an unexpected body")
    return data


def account_get(api_key: str) -> Account:
    with _client(api_key) as client:
        data = _get(client, "/v1/account")
    return Account(id=str(data.get("id", "")), name=str(data.get("name", ""))[:200])


def lead_pages(api_key: str, page_size: int = 100) -> Iterator[list[dict[str, Any]]]:
    """Yield the account's leads page by page until `next_cursor` is null."""
    cursor: str | None = None
    with _client(api_key) as client:
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor:
                params["cursor"] = cursor
            data = _get(client, "/v1/leads", params)
            rows = data.get("data") or []
            yield [row for row in rows if isinstance(row, dict) and row.get("id")]
            cursor = data.get("next_cursor")
            if not cursor:
                return
