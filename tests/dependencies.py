"""Private copies of the service's dependencies for fault tests, each on its own port and data directory, so that
stopping, killing or restarting them disturbs nothing else: Redis (broker or cache), RabbitMQ and a PostgreSQL
cluster (`initdb`). Started from the machine's Debian packages."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.pooler import free_port


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not come up on port {port}")


class PrivateRedis:
    """`redis-server` keeping nothing on disk: a restart comes back empty, as a broker restarted without
    persistence does."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.work = work
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        log = open(self.work / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.work)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _wait_port(self.port, 20, "redis-server")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


class PrivateRabbitMQ:
    """A RabbitMQ node of its own (name, ports, data directory) beside the machine's; `restart_empty` wipes its
    data, as a broker rebuilt after a crash."""

    def __init__(self, work: Path) -> None:
        self.port, self.dist_port = free_port(), free_port()
        self.base = work / f"rabbitmq-{self.port}"
        self.node = f"orgsci{self.port}@localhost"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> "PrivateRabbitMQ":
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        env = {
            **os.environ, "HOME": str(self.base), "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"), "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
            # A node that fails to boot writes its crash dump here, not into the checkout.
            "ERL_CRASH_DUMP": str(self.base / "erl_crash.dump"),
        }  # fmt: skip
        log = open(self.base / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        _wait_port(self.port, 90, "rabbitmq-server")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def restart_empty(self) -> None:
        self.kill()
        shutil.rmtree(self.base / "mnesia", ignore_errors=True)
        self.start()


class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own (`initdb`, trust on 127.0.0.1), to stop and restart mid-run."""

    def __init__(self) -> None:
        import tempfile

        self.port = free_port()
        # Not under pytest's tmp_path: the server runs as `postgres`, which may not enter root's directories.
        self.root = Path(tempfile.mkdtemp(prefix="orgs-pg-"))
        self.data = self.root / "data"
        self.bin = Path("/usr/lib/postgresql/15/bin")

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> "PrivatePostgres":
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        return self.start()

    def start(self) -> "PrivatePostgres":
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-o", options, "start")
        return self

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
