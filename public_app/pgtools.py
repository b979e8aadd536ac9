"""Running PostgreSQL's own tools (pg_dump, psql) against the database Django is connected to."""

import os
import shutil

import psycopg
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


# Keys of DATABASES[...]["OPTIONS"] that Django reads itself; the others are libpq's (connect_timeout, sslmode, ...).
_DJANGO_OPTIONS = {"isolation_level", "server_side_binding", "pool", "assume_role"}


def direct_connection() -> psycopg.Connection:
    """A psycopg connection of its own (autocommit) to Django's database, for work that needs its own transactions
    next to Django's: a rollout's per-schema transactions, a snapshot's repeatable-read one. It prepares no
    statements: behind a pooler in transaction mode, the next transaction may run on a server connection that has
    another client's (or lacks this one's)."""
    params = connection.settings_dict
    options = {k: v for k, v in (params.get("OPTIONS") or {}).items() if k not in _DJANGO_OPTIONS}
    return psycopg.connect(
        dbname=params["NAME"], user=params.get("USER") or None, password=params.get("PASSWORD") or None,
        host=params.get("HOST") or None, port=params.get("PORT") or None, autocommit=True, prepare_threshold=None,
        **options,
    )  # fmt: skip
