"""Running PostgreSQL's own tools (pg_dump, psql) against the database Django is connected to."""

import os
import shutil

from django.db import connection


def pg_tool(name: str) -> str:
    """The tool's path: PG_DUMP / PSQL from the environment (the embedded server sets them), else from PATH."""
    path = os.environ.get(name.upper().replace("-", "_")) or shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} not found on PATH")
    return path


def pg_connection_args() -> tuple[dict[str, str], list[str]]:
    """Environment and command-line arguments that point a PostgreSQL tool at the current connection's server."""
    params = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": str(params.get("PASSWORD") or "")}
    args = ["--host", str(params.get("HOST") or "localhost"), "--port", str(params.get("PORT") or 5432),
            "--username", str(params.get("USER") or "postgres")]  # fmt: skip
    return env, args
