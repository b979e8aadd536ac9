"""A private PgBouncer in transaction mode (started by `.ci/pgbouncer`) and the service's processes behind it, for
the tests that prove isolation through a pooler."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port for a server a test starts, below the kernel's ephemeral range (32768-60999 here): a server that is
    restarted on the same port (a broker, a cache, RabbitMQ's distribution port) must find it free again, and a port
    from the ephemeral range can be taken meanwhile as the local end of any outgoing connection (seen: RabbitMQ's
    restart failed with `dist_port_already_used ... not_erlang`)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


@contextmanager
def pgbouncer(pool_size: int = 3, log_dir: Path | None = None) -> Iterator[int]:
    """PgBouncer (transaction mode, `pool_size` server connections per database) in front of the PostgreSQL the
    tests use; yields its port. Its log is copied to `log_dir` at the end."""
    params = connection.settings_dict
    upstream_port = os.environ.get("PG_DIRECT_PORT") or str(params.get("PORT") or 5432)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as run_dir:
        script = ROOT / ".ci" / "pgbouncer"
        subprocess.run(["bash", str(script), "start", run_dir, str(port), str(params.get("HOST") or "127.0.0.1"),
                        upstream_port, str(pool_size)], check=True, timeout=300)  # fmt: skip
        try:
            yield port
        finally:
            subprocess.run(["bash", str(script), "stop", run_dir], check=False, timeout=30)
            if log_dir is not None and (Path(run_dir) / "pgbouncer.log").exists():
                shutil.copy(Path(run_dir) / "pgbouncer.log", log_dir / "pgbouncer.log")


def service_env(pooler_port: int, **extra: str) -> dict[str, str]:
    """The environment of a service process that reaches the test database through the pooler, with a broker
    namespace and cache of its own (the in-process test worker must not take its messages)."""
    database = connection.settings_dict["NAME"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "APP_ENV": "test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pooler_port}/{database}",
        "DB_CONN_MAX_AGE": "60",
        "CACHE_URL": "redis://127.0.0.1:6379/13",
        "BROKER_URL": "redis://127.0.0.1:6379/12",
        "BROKER_NAMESPACE": f"orgs-pooled-{os.getpid()}",
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "dramatiq_worker_timeout": "100",
    }
    env.update(extra)
    return env


class Processes:
    """Child processes in their own process groups, stopped (and waited for) together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        self.children.append((name, process))
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def stop_all(self) -> None:
        for _, process in reversed(self.children):
            self.stop(process)


def start_web(processes: Processes, env: dict[str, str], workers: int = 2, threads: int = 4) -> str:
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
           "WEB_THREADS": str(threads)}  # fmt: skip
    process = processes.start("web", [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                                      "config.wsgi:application"], env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 60, "the web server", process)
    return base


def start_worker(processes: Processes, env: dict[str, str], threads: int = 4) -> subprocess.Popen:
    return processes.start("worker", [sys.executable, "-m", "dramatiq", "jobs.worker", "--processes", "1",
                                      "--threads", str(threads)], env)  # fmt: skip


def wait_until(check: Any, timeout: float, what: str, process: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"a process exited with {process.returncode} while waiting for {what}")
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
