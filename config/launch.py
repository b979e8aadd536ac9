"""`python -m config.launch`: the run command's front door. Decides which database, broker and cache to use
*before* Django reads its settings, then hands over to `manage.py serve`.

- DATABASE_URL set: used as is. Unset: the local PostgreSQL (127.0.0.1:LOCAL_POSTGRES_PORT, default 5432) if it
  answers, else an embedded PostgreSQL 16 from the `pgserver` package, with its data under DATA_DIR/pg (default
  .data/pg), stopped when the service stops.
- BROKER_URL set: used as is. Unset: the local Redis (127.0.0.1:LOCAL_REDIS_PORT, default 6379) if it answers,
  else a PostgreSQL-backed Dramatiq broker on the same database (dramatiq-postgres): jobs stay durable without
  Redis or RabbitMQ.
- CACHE_URL set: used as is. Unset: that Redis if it answers, else Django's database cache (shared by every
  process, so cache invalidation still reaches all of them).
"""

import os
import socket
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _embedded_postgres(data_dir: Path) -> tuple[str, object]:
    try:
        import pgserver
    except ImportError:
        raise SystemExit(
            "No DATABASE_URL, no PostgreSQL on 127.0.0.1, and the embedded one needs the `pgserver` package "
            "(Python 3.12; `pip install pgserver`)."
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    os.environ.setdefault("PG_DUMP", str(bin_dir / "pg_dump"))
    os.environ.setdefault("PSQL", str(bin_dir / "psql"))
    return f"postgres://postgres@{quote(str(data_dir), safe='')}/orgs", server


def configure(env: dict[str, str]) -> tuple[list[str], object | None]:
    """Fill in DATABASE_URL, BROKER_URL and CACHE_URL in `env`; returns what was chosen (for the banner) and the
    embedded server handle (kept alive by the caller)."""
    notes: list[str] = []
    server = None
    data_dir = Path(env.get("DATA_DIR") or ROOT / ".data")
    if not env.get("DATABASE_URL"):
        port = int(env.get("LOCAL_POSTGRES_PORT") or 5432)
        if _answers("127.0.0.1", port):
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/orgs"
            notes.append(f"database: local PostgreSQL on 127.0.0.1:{port}")
        else:
            env["DATABASE_URL"], server = _embedded_postgres(data_dir / "pg")
            env.setdefault("PG_DUMP", os.environ["PG_DUMP"])
            env.setdefault("PSQL", os.environ["PSQL"])
            notes.append(f"database: embedded PostgreSQL 16 (pgserver), data in {data_dir / 'pg'}")
    redis_port = int(env.get("LOCAL_REDIS_PORT") or 6379)
    redis_up = _answers("127.0.0.1", redis_port)
    if not env.get("BROKER_URL"):
        if redis_up:
            env["BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            notes.append(f"broker: Redis on 127.0.0.1:{redis_port}")
        else:
            env["BROKER_URL"] = env["DATABASE_URL"]
            notes.append("broker: PostgreSQL (dramatiq-postgres) on the same database")
    if not env.get("CACHE_URL"):
        if redis_up:
            env["CACHE_URL"] = f"redis://127.0.0.1:{redis_port}/1"
        else:
            env["CACHE_URL"] = "db://"
            notes.append("cache: the database (no Redis)")
    return notes, server


def main() -> None:
    notes, server = configure(os.environ)  # type: ignore[arg-type]
    for note in notes:
        print(note, flush=True)
    import signal
    import subprocess

    # Not exec: this process keeps the embedded PostgreSQL alive and stops it after the service exits.
    command = [sys.executable, str(ROOT / "manage.py"), "serve", *sys.argv[1:]]
    process = subprocess.Popen(command, env=os.environ)

    def forward(signum: int, frame: object) -> None:
        # Ctrl-C in a terminal reaches the whole group; a `kill` of this process alone must reach serve too.
        if process.poll() is None:
            process.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = process.wait()
    finally:
        del server  # pgserver stops the server it started (cleanup_mode="stop")
    sys.exit(code)


if __name__ == "__main__":
    main()
