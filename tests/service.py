"""The whole service as its run command starts it (`python -m config.launch`, what `bash .ci/serve` execs), with
its own database, broker and cache, and a client that behaves like a well-written SDK: used by the process-fault
tests and the Citus tests."""

import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.pooler import Processes, free_port, wait_until

PASSWORD = "fault-tests-pass-1"
RECOVERY = {
    # Short recovery intervals for the test; production defaults are in config/settings.py and the README.
    "OUTBOX_REDELIVER_SECONDS": "8",
    "BROKER_HEARTBEAT_TIMEOUT_SECONDS": "5",
    "REDRIVE_AFTER_SECONDS": "10",
    "PROVISIONING_STUCK_SECONDS": "10",
    "SCHEDULER_INTERVAL_SECONDS": "2",
    "EMAIL_CLAIM_SECONDS": "10",
    "dramatiq_worker_timeout": "100",
}


class Service:
    """One running service: its URL, its database, its processes, and what its clients saw."""

    def __init__(self, tmp: Path, database_url: str, broker_url: str, cache_url: str, smtp_port: int = 25,
                 **extra_env: str) -> None:  # fmt: skip
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.processes = Processes(tmp)
        self.statuses: Counter[int] = Counter()
        self.env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url, "BROKER_URL": broker_url, "CACHE_URL": cache_url,
            "BROKER_NAMESPACE": f"orgs-faults-{self.port}", "DB_CONN_MAX_AGE": "0",
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port), "RATELIMIT_ENABLED": "false", "METRICS_ALLOW_NETWORKS": "127.0.0.1/32",
            "TENANT_SPARE_SCHEMAS": "0", "LOG_LEVEL": "WARNING", **RECOVERY, **extra_env,
        }  # fmt: skip
        self.token = ""

    def start(self) -> "Service":
        self.process = self.processes.start(
            "serve", [sys.executable, "-m", "config.launch", "--host", "127.0.0.1", "--port", str(self.port),
                      "--web-workers", "1", "--job-threads", "4"], self.env,
        )  # fmt: skip
        wait_until(lambda: httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200, 180, "the service",
                   self.process)  # fmt: skip
        return self

    def stop(self) -> None:
        self.processes.stop_all()

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, **headers: str) -> Any:
        """A client that retries what the service asks it to retry (503 + Retry-After, connection errors) with the
        same Idempotency-Key, like a well-behaved SDK; records every status it saw."""
        if token is None:
            token = self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if method == "POST":
            headers.setdefault("Idempotency-Key", os.urandom(8).hex())
        for _ in range(60):
            try:
                response = httpx.request(method, f"{self.base}{path}", json=body, headers=headers, timeout=15)
            except httpx.HTTPError:
                self.statuses[0] += 1
                time.sleep(0.5)
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 503 and "Retry-After" in response.headers:
                time.sleep(min(1.0, float(response.headers["Retry-After"])))
                continue
            return response
        raise AssertionError(f"{method} {path} never succeeded")

    def sign_up(self, email: str) -> str:
        response = self.call("POST", "/api/v1/auth/signup", {"email": email, "password": PASSWORD, "name": "Ops"},
                             token="")  # fmt: skip
        assert response.status_code == 201, response.text
        with psycopg.connect(self.database_url, autocommit=True) as conn:  # the test reads no mailbox for this
            conn.execute("UPDATE public_app_user SET email_verified_at = now() WHERE email = %s", [email])
        self.token = response.json()["token"]
        return self.token

    def create_organization(self, slug: str) -> None:
        response = self.call("POST", "/api/v1/organizations", {"name": slug.title(), "slug": slug})
        assert response.status_code == 202, response.text

    def invite(self, slug: str, email: str) -> str:
        response = self.call("POST", f"/api/v1/organizations/{slug}/invitations", {"email": email, "role": "member"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def statuses_of(self, slugs: list[str]) -> Counter[str]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT status FROM public_app_organization WHERE slug = ANY(%s)", [slugs]).fetchall()
        return Counter(status for (status,) in rows)

    def child_pids(self, pattern: str) -> list[int]:
        """Processes under the service whose command line matches `pattern` (the killed-process tests)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if re.search(pattern, args) and self._descends(int(entry.name)):
                pids.append(int(entry.name))
        return pids

    def _descends(self, pid: int) -> bool:
        while pid > 1:
            if pid == self.process.pid:
                return True
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                return False
        return False

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=5).text
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        found = re.findall(rf"^{name}{{{selector}}} ([0-9.e+]+)$", text, flags=re.M)
        return float(found[0]) if found else 0.0
