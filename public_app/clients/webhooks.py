"""Outbound webhook HTTP: Standard Webhooks signing and a client that cannot be pointed at internal addresses.

The address check runs where the socket is opened (a custom httpcore network backend), on every address the name
resolves to, so a hostname that resolves to 127.0.0.1 (or re-resolves there later: DNS rebinding) is refused just
like a literal internal IP. Redirects are never followed.
"""

import base64
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings
from standardwebhooks.webhooks import Webhook


class ForbiddenTarget(Exception):
    """The URL points at an address webhooks may not reach (loopback, private, link-local, metadata, ...)."""


class InvalidTarget(Exception):
    pass


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# IPv6 forms that carry an IPv4 address inside them (besides IPv4-mapped and 6to4/Teredo, which the standard
# library unwraps): NAT64 prefixes translate to the embedded address, IPv4-compatible addresses (::a.b.c.d) are
# routed to it by some stacks. Site-local (fec0::/10) is deprecated but still routed on some networks.
_NAT64 = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (RFC 2765 SIIT)
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


# Local-use NAT64 (RFC 8215): with its /48 to /64 prefixes the IPv4 address sits in other bits than the low 32, and
# whoever runs the translator decides where it leads; none of it is a public destination.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def _unicast_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # is_global excludes loopback, RFC 1918, link-local (169.254.169.254 metadata), CGNAT, ULA, reserved, ...
    if isinstance(ip, ipaddress.IPv6Address) and ip in _LOCAL_NAT64:
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified


RESPONSE_BODY_KEPT = 300


def _address_allowed(address: str) -> bool:
    """An allow-list: only globally routable unicast addresses, and for IPv6 only when every IPv4 address it embeds
    is one too (so `[::127.0.0.1]`, `[64:ff9b::a9fe:a9fe]` or `[2002:a9fe:a9fe::1]` do not reach inside)."""
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _SITE_LOCAL or ip in _IPV4_COMPATIBLE:  # deprecated forms (RFC 3879, RFC 4291): never a target
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not _unicast_global(embedded):
            return False
    return _unicast_global(ip)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def url_check(url: str) -> None:
    """Validate an endpoint URL at creation/update: scheme, shape, and (when it resolves) its addresses."""
    parts = urlsplit(url)
    allowed_schemes = ("https",) if settings.WEBHOOK_REQUIRE_HTTPS else ("https", "http")
    if parts.scheme not in allowed_schemes:
        raise InvalidTarget(f"The URL must use {' or '.join(allowed_schemes)}.")
    if not parts.hostname or parts.username or parts.password:
        raise InvalidTarget("The URL must have a host and no credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidTarget("The URL has an invalid port.") from None
    host = parts.hostname
    try:
        literal = [str(ipaddress.ip_address(host))]
    except ValueError:
        literal = []
    for address in literal or _resolve(host, port):
        if not _address_allowed(address):
            raise ForbiddenTarget("The URL points at a private, loopback or link-local address.")


class _GuardedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}")
        for address in addresses:
            if not _address_allowed(address):
                raise ForbiddenTarget(f"{host} resolves to a forbidden address")
        # Connect to the address we checked, not to a fresh resolution of the name.
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


def _client() -> httpx.Client:
    transport = httpx.HTTPTransport(retries=0)
    transport._pool._network_backend = _GuardedBackend()  # httpx has no public hook for this
    return httpx.Client(
        transport=transport,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "orgs-webhooks/1.0"},
    )


@dataclass(frozen=True)
class DeliveryResult:
    status: int | None
    body: str
    error: str


def sign_headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body),
        "content-type": "application/json",
    }


def deliver(url: str, secret: str, msg_id: str, timestamp: datetime, body: str) -> DeliveryResult:
    """POST one signed delivery; never raises for network trouble (it is reported in the result)."""
    try:
        with _client() as client:
            response = client.post(url, content=body.encode(), headers=sign_headers(secret, msg_id, timestamp, body))
        # A few hundred bytes are enough to debug a receiver, and too little to read a service through one.
        return DeliveryResult(status=response.status_code, body=response.text[:RESPONSE_BODY_KEPT], error="")
    except ForbiddenTarget as exc:
        return DeliveryResult(status=None, body="", error=f"forbidden target: {exc}")
    except httpx.HTTPError as exc:
        return DeliveryResult(status=None, body="", error=f"{type(exc).__name__}: {exc}"[:2000])
