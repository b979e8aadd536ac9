"""A Leadsforce server for tests, speaking the wire format of docs/leadsforce.md on 127.0.0.1."""

import http.server
import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeLeadsforce:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {"lf_good_key": "Acme Sales"}
        self.leads: list[dict[str, Any]] = []
        self.leads_by_key: dict[str, list[dict[str, Any]]] = {}  # keys with leads of their own (else `leads`)
        self.fail_with: int | None = None  # answer every request with this status
        self.requests: list[tuple[str, str]] = []  # (path, authorization)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append((self.path, self.headers.get("Authorization", "")))
                if fake.fail_with:
                    return self._json(fake.fail_with, {"error": "unavailable"})
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if key not in fake.keys:
                    return self._json(401, {"error": "invalid_api_key"})
                url = urlsplit(self.path)
                if url.path == "/v1/account":
                    return self._json(200, {"id": "acc_1", "name": fake.keys[key]})
                if url.path == "/v1/leads":
                    query = parse_qs(url.query)
                    start = int(query.get("cursor", ["0"])[0])
                    limit = min(int(query.get("limit", ["100"])[0]), 100)
                    leads = fake.leads_by_key.get(key, fake.leads)
                    page = leads[start : start + limit]
                    more = start + limit < len(leads)
                    return self._json(200, {"data": page, "next_cursor": str(start + limit) if more else None})
                return self._json(404, {"error": "not_found"})

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_leads(self, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            self.leads.append(
                {"id": f"lf_{i}", "first_name": f"Lead{i}", "last_name": "Force", "email": f"lead{i}@example.com",
                 "phone": f"+1415555{i:04d}", "created_at": "2026-11-01T10:00:00Z"}
            )  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # `python -m tests.fakes.leadsforce 9922`: a fake to try the integration by hand
    import sys
    import time

    fake = FakeLeadsforce()
    fake.add_leads(int(sys.argv[1]) if len(sys.argv) > 1 else 250)
    print(f"fake Leadsforce at {fake.url}, api key lf_good_key", flush=True)
    while True:
        time.sleep(3600)
