"""The run command on a machine with nothing configured: no DATABASE_URL/BROKER_URL, and nothing answering on the
default PostgreSQL and Redis ports (simulated with unused ports). It must start an embedded PostgreSQL, run jobs on
a PostgreSQL-backed broker, and serve the whole signup → organization → agent path."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.pooler import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_fresh_machine_gets_embedded_postgres_and_a_postgres_broker(tmp_path):
    import pgserver  # noqa: F401 - the embedded database must be installable here (Python 3.12)

    port = free_port()
    data_dir = tmp_path / "data"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOCAL_POSTGRES_PORT": str(free_port()),
        "LOCAL_REDIS_PORT": str(free_port()),
        "DATA_DIR": str(data_dir),
        "WEB_CONCURRENCY": "1",
        "JOB_THREADS": "2",
    }
    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "config.launch"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 240, "the service", process)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-4000:]}") from None
        output = log_path.read_text()
        assert "embedded PostgreSQL 16 (pgserver)" in output
        assert "broker: PostgreSQL (dramatiq-postgres)" in output
        ready = httpx.get(f"{base}/readyz").json()
        assert (ready["status"], ready["checks"]) == ("ok", {"database": "ok", "broker": "ok", "cache": "ok"})
        client = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
        signup = client.post("/auth/signup", json={"email": "fresh@example.com", "password": "a-strong-pass-91",
                                                   "name": "Fresh"})  # fmt: skip
        assert signup.status_code == 201, signup.text
        client.headers["Authorization"] = f"Bearer {signup.json()['token']}"
        created = client.post("/organizations", json={"name": "Fresh", "slug": "fresh-machine"})
        assert created.status_code == 202
        wait_until(lambda: client.get("/organizations/fresh-machine").json()["status"] == "active", 120, "active")
        agent = client.post("/organizations/fresh-machine/agents", json={"name": "Ann"})
        assert agent.status_code == 201, agent.text
        assert [a["name"] for a in client.get("/organizations/fresh-machine/agents").json()["items"]] == ["Ann"]
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    # the embedded PostgreSQL stopped with the service
    time.sleep(1)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(data_dir) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], (leftovers, log_path.read_text()[-3000:])
