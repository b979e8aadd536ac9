"""Citus, when the database is a Citus coordinator with schema-based sharding.

Every schema created on the coordinator then becomes a distributed schema: its tables live on one worker node
(`citus_schemas`, `citus_tables`, `citus_shards`), and the coordinator routes each query there. Nothing else in the
code changes; this module is what knows about the cluster:

- tenant roles must be able to log in (tenant_roles.role_create), because the coordinator opens its connections to
  the workers as the current role, which is the tenant's role (public_app.tenancy); a worker's pg_hba.conf should
  admit those roles from the coordinator only;
- sizes and placements come from the cluster's catalog (the coordinator's own tables are empty shells);
- an organization moves between workers with `citus_schema_move`, by logical replication by default, so its API
  keeps answering while it moves.

On plain PostgreSQL `enabled()` is false and nothing here runs.
"""

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from django.db import connection

_enabled: dict[tuple, bool] = {}


def _database_key() -> tuple:
    params = connection.settings_dict
    return params.get("HOST"), params.get("PORT"), params.get("NAME")


def enabled() -> bool:
    """Whether the database is a Citus coordinator (the extension is installed). Asked once per process."""
    key = _database_key()
    if key not in _enabled:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
            _enabled[key] = cursor.fetchone() is not None
    return _enabled[key]


@dataclass(frozen=True)
class Placement:
    node: str  # "host:port" of the worker holding the schema's tables
    bytes: int  # the schema's size on that worker (tables, indexes, TOAST)


def placements(schemas: Iterable[str] | None = None) -> dict[str, Placement]:
    """Where each distributed schema lives and how big it is there; only the given schemas when a list is given."""
    wanted = None if schemas is None else list(schemas)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.schema_name::text, sh.nodename, sh.nodeport, COALESCE(SUM(sh.shard_size), 0)
            FROM citus_schemas s JOIN citus_shards sh ON sh.colocation_id = s.colocation_id
            WHERE %s::text[] IS NULL OR s.schema_name::text = ANY(%s::text[])
            GROUP BY 1, 2, 3
            """,
            [wanted, wanted],
        )
        return {schema: Placement(f"{host}:{port}", int(size)) for schema, host, port, size in cursor.fetchall()}


def distributed_schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name::text FROM citus_schemas")
        return {row[0] for row in cursor.fetchall()}


def undistributed_tables(schemas: Iterable[str]) -> dict[str, list[str]]:
    """Tables of the given schemas that Citus does not know (created in a way it does not distribute, such as
    inside a function), by schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p')
              AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)
            ORDER BY 1, 2
            """,
            [list(schemas)],
        )
        result: dict[str, list[str]] = {}
        for schema, table in cursor.fetchall():
            result.setdefault(schema, []).append(table)
        return result


def schema_distribute(schema: str) -> None:
    """Make an existing schema a distributed one (`orgs reconcile` for a schema created before Citus, or by hand)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT citus_schema_distribute(%s::regnamespace)", [schema])


@dataclass(frozen=True)
class Node:
    host: str
    port: int
    schemas: int
    bytes: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def worker_nodes() -> list[Node]:
    """The active primary nodes that may hold schemas, with how many tenant schemas and bytes each holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nodename, n.nodeport,
                   COUNT(DISTINCT s.schema_name), COALESCE(SUM(sh.shard_size), 0)
            FROM pg_dist_node n
            LEFT JOIN citus_shards sh ON sh.nodename = n.nodename AND sh.nodeport = n.nodeport
                                      AND sh.citus_table_type = 'schema'
            LEFT JOIN citus_schemas s ON s.colocation_id = sh.colocation_id
            WHERE n.noderole = 'primary' AND n.isactive AND n.shouldhaveshards
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        )
        return [Node(host, port, int(count), int(size)) for host, port, count, size in cursor.fetchall()]


def parse_node(address: str) -> tuple[str, int]:
    """`host:port` of a worker node; ValueError unless it is one of the cluster's active workers."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    if not any(node.host == host and node.port == int(port) for node in worker_nodes()):
        known = ", ".join(node.address for node in worker_nodes())
        raise ValueError(f"{address} is not an active worker node of this cluster (workers: {known})")
    return host, int(port)


@dataclass(frozen=True)
class MoveProgress:
    seconds: float
    copied_bytes: int
    total_bytes: int
    status: str


def _progress_reader(stop: threading.Event, report: Callable[[MoveProgress], None], interval: float) -> None:
    """Poll `get_rebalance_progress()` from a connection of its own while the move runs on Django's connection."""
    params = connection.settings_dict
    started = time.monotonic()
    try:
        with psycopg.connect(
            host=params.get("HOST") or "localhost", port=params.get("PORT") or 5432, dbname=params["NAME"],
            user=params.get("USER") or "postgres", password=params.get("PASSWORD") or None, autocommit=True,
        ) as conn:  # fmt: skip
            while not stop.wait(interval):
                rows = conn.execute(
                    "SELECT COALESCE(SUM(target_shard_size), 0), COALESCE(SUM(source_shard_size), 0), "
                    "COALESCE(string_agg(DISTINCT status::text, ','), '') FROM get_rebalance_progress()"
                ).fetchone()
                copied, total, status = rows if rows else (0, 0, "")
                report(MoveProgress(time.monotonic() - started, int(copied), int(total), status or "starting"))
    except psycopg.Error:
        return  # progress is a courtesy; the move itself reports its own outcome


def schema_move(
    schema: str,
    host: str,
    port: int,
    *,
    block_writes: bool = False,
    progress: Callable[[MoveProgress], None] | None = None,
    interval: float = 1.0,
) -> float:
    """Move one schema to another worker; returns the seconds it took. By default by logical replication
    (`force_logical`): reads and writes go on during the copy and are blocked only for the final switch-over.
    `block_writes` copies with writes blocked throughout (faster for small schemas, but writers wait)."""
    mode = "block_writes" if block_writes else "force_logical"
    stop = threading.Event()
    reader = None
    if progress is not None:
        reader = threading.Thread(target=_progress_reader, args=(stop, progress, interval), daemon=True)
        reader.start()
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT citus_schema_move(%s::regnamespace, %s, %s, %s::citus.shard_transfer_mode)",
                [schema, host, port, mode],
            )
    finally:
        stop.set()
        if reader is not None:
            reader.join(timeout=5)
    return time.monotonic() - started


@dataclass(frozen=True)
class PlannedMove:
    schema: str
    source: str
    target: str
    bytes: int


def rebalance_plan() -> list[PlannedMove]:
    """The moves Citus' rebalancer would make to even out the workers (its default strategy), one per schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT ON (n.nspname) n.nspname, p.sourcename, p.sourceport, p.targetname, p.targetport,
                   p.shard_size
            FROM get_rebalance_table_shards_plan() p
            JOIN pg_class c ON c.oid = p.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
            ORDER BY n.nspname
            """
        )
        return [
            PlannedMove(schema, f"{sh}:{sp}", f"{th}:{tp}", int(size or 0))
            for schema, sh, sp, th, tp, size in cursor.fetchall()
        ]
