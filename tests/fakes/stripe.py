"""A Stripe-compatible HTTP server for tests: the real stripe-python client talks to it on 127.0.0.1.

It records every request, honours Idempotency-Key like Stripe (a repeat returns the first response without doing
the work again), keeps minimal state for the objects we use, answers in Stripe's JSON shapes, and signs webhook
payloads the way Stripe does.
"""

import hashlib
import hmac
import http.server
import itertools
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.customers: dict[str, dict] = {}
        self.checkout_sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.invoices: list[dict] = []
        self.quantity_updates: list[dict] = []  # applied (not replayed) subscription item updates
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.fail_next: int = 0  # answer the next N requests with 500
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(body or url.query, keep_blank_values=True))
                key = self.headers.get("Idempotency-Key")
                record = {"method": method, "path": url.path, "params": params, "idempotency_key": key,
                          "auth": self.headers.get("Authorization", "")}  # fmt: skip
                with fake.lock:
                    fake.requests.append(record)
                    if fake.fail_next > 0:
                        fake.fail_next -= 1
                        return self._json(500, {"error": {"type": "api_error", "message": "boom"}})
                    if method == "POST" and key and key in fake.idempotent:
                        status, payload = fake.idempotent[key]
                        return self._json(status, payload)
                    status, payload = fake.route(method, url.path, params)
                    if method == "POST" and key:
                        fake.idempotent[key] = (status, payload)
                self._json(status, payload)

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(fake.ids)}")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # --- state -------------------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids):06d}"

    def route(self, method: str, path: str, p: dict[str, str]) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/customers":
            customer = {"id": self._id("cus"), "object": "customer", "name": p.get("name"), "email": p.get("email"),
                        "metadata": _nested(p, "metadata")}  # fmt: skip
            self.customers[customer["id"]] = customer
            return 200, customer
        if method == "POST" and path == "/v1/checkout/sessions":
            sid = self._id("cs")
            session = {"id": sid, "object": "checkout.session", "url": f"https://checkout.stripe.test/c/{sid}",
                       "customer": p.get("customer"), "client_reference_id": p.get("client_reference_id"),
                       "mode": p.get("mode"), "params": p}  # fmt: skip
            self.checkout_sessions[sid] = session
            return 200, {k: v for k, v in session.items() if k != "params"}
        if method == "POST" and path == "/v1/billing_portal/sessions":
            if p.get("customer") not in self.customers:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such customer"}}
            return 200, {
                "id": self._id("bps"),
                "object": "billing_portal.session",
                "url": f"https://billing.stripe.test/p/{p['customer']}",
                "return_url": p.get("return_url"),
            }
        if parts[:2] == ["v1", "subscriptions"] and len(parts) == 3:
            subscription = self.subscriptions.get(parts[2])
            if subscription is None:
                return 404, {"error": {"type": "invalid_request_error", "message": "No such subscription"}}
            if method == "POST" and "cancel_at_period_end" in p:
                subscription["cancel_at_period_end"] = p["cancel_at_period_end"] == "true"
            return 200, subscription
        if method == "POST" and parts[:2] == ["v1", "subscription_items"] and len(parts) == 3:
            for subscription in self.subscriptions.values():
                for item in subscription["items"]["data"]:
                    if item["id"] == parts[2]:
                        item["quantity"] = int(p["quantity"])
                        self.quantity_updates.append({"item": item["id"], "quantity": item["quantity"],
                                                      "proration_behavior": p.get("proration_behavior")})  # fmt: skip
                        return 200, item
            return 404, {"error": {"type": "invalid_request_error", "message": "No such subscription item"}}
        if method == "GET" and path == "/v1/invoices":
            mine = [i for i in self.invoices if i["customer"] == p.get("customer")]
            if p.get("starting_after"):
                ids = [i["id"] for i in mine]
                mine = mine[ids.index(p["starting_after"]) + 1 :] if p["starting_after"] in ids else []
            limit = int(p.get("limit", 10))
            return 200, {"object": "list", "url": "/v1/invoices", "data": mine[:limit], "has_more": len(mine) > limit}
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL {path}"}}

    # --- helpers for tests -------------------------------------------------------------------------------------
    def complete_checkout(self, session_id: str, *, status: str = "active") -> dict:
        """What happens when the customer pays: a subscription exists; returns the checkout.session.completed event."""
        session = self.checkout_sessions[session_id]
        params = session["params"]
        subscription_id = self._id("sub")
        self.subscriptions[subscription_id] = {
            "id": subscription_id, "object": "subscription", "customer": session["customer"], "status": status,
            "cancel_at_period_end": False, "metadata": _nested(params, "subscription_data[metadata]"),
            "default_payment_method": {"id": self._id("pm"), "object": "payment_method",
                                       "card": {"brand": "visa", "last4": "4242"}},
            "items": {"object": "list", "url": "/v1/subscription_items", "has_more": False, "data": [{
                "id": self._id("si"), "object": "subscription_item",
                "price": {"id": params["line_items[0][price]"], "object": "price"},
                "quantity": int(params["line_items[0][quantity]"]),
                "current_period_end": int(time.time()) + 30 * 86400,
            }]},
        }  # fmt: skip
        obj = {"id": session_id, "object": "checkout.session", "customer": session["customer"],
               "client_reference_id": session["client_reference_id"], "subscription": subscription_id,
               "mode": "subscription", "metadata": _nested(params, "metadata")}  # fmt: skip
        return self.event("checkout.session.completed", obj)

    def set_subscription_status(self, subscription_id: str, status: str) -> dict:
        subscription = self.subscriptions[subscription_id]
        subscription["status"] = status
        return self.event(f"customer.subscription.{'deleted' if status == 'canceled' else 'updated'}", subscription)

    def event(self, event_type: str, obj: dict) -> dict:
        return {"id": self._id("evt"), "object": "event", "type": event_type, "api_version": "2025-01-01",
                "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
                "data": {"object": json.loads(json.dumps(obj))}}  # fmt: skip

    @staticmethod
    def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
        t = timestamp or int(time.time())
        signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={t},v1={signature}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _nested(params: dict[str, str], prefix: str) -> dict[str, str]:
    depth = prefix.count("[") + 1
    return {
        k[len(prefix) + 1 : -1]: v for k, v in params.items() if k.startswith(prefix + "[") and k.count("[") == depth
    }
