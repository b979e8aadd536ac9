"""Citus against plain PostgreSQL, in one run: the provisioning paths and a request's database work.

    .venv/bin/python bench/citus.py CITUS_URL [PLAIN_URL] [N]

CITUS_URL is a Citus coordinator database with the service migrated on it (its `tenant_template` schema is the
template; `bash .ci/serve` with DATABASE_URL pointing there makes one), PLAIN_URL a plain PostgreSQL database to
compare with (created if missing; default postgres://postgres@127.0.0.1:5432/orgs_bench_citus). For each: N
schemas built by template replay (statement by statement on Citus, one round trip on plain, as the code does),
N spare claims (`ALTER SCHEMA … RENAME` with the role), and 200 request-shaped transactions (pin path and role,
read a row by id, insert one) as the tenant role. Prints p50/p95 and the Citus/plain ratio. Drops what it made.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from public_app.ids import agent_uid
from public_app.pgdump import PLACEHOLDER, schema_ddl

CITUS = sys.argv[1]
PLAIN = sys.argv[2] if len(sys.argv) > 2 else "postgres://postgres@127.0.0.1:5432/orgs_bench_citus"
N = int(sys.argv[3]) if len(sys.argv) > 3 else 10


def template_ddl() -> str:
    dump = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--schema", "tenant_template",
                           CITUS], capture_output=True, text=True, check=True).stdout  # fmt: skip
    return schema_ddl(dump, "tenant_template")


def ensure(url: str) -> None:
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def build(conn: psycopg.Connection, schema: str, ddl: str, citus: bool) -> None:
    text = f"CREATE SCHEMA {schema};\n" + ddl.replace(f"{PLACEHOLDER}.", f"{schema}.")
    with conn.transaction():
        if citus:
            for statement in text.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
        else:
            conn.execute(text)
        conn.execute(f"CREATE ROLE bench_{schema} LOGIN NOINHERIT")
        conn.execute(f"GRANT bench_{schema} TO CURRENT_USER")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO bench_{schema}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO bench_{schema}")
        conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO bench_{schema}")


def drop(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.execute(f"DROP ROLE IF EXISTS bench_{schema}")


def ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def run(url: str, ddl: str, citus: bool) -> dict[str, tuple[float, float]]:
    results = {}
    with psycopg.connect(url, autocommit=True) as conn:
        replay, rename = [], []
        for i in range(N):
            started = time.perf_counter()
            build(conn, f"t_bench_{i}", ddl, citus)
            replay.append(time.perf_counter() - started)
        for i in range(N):
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(f"ALTER SCHEMA t_bench_{i} RENAME TO t_bench_claimed_{i}")
                conn.execute(f"ALTER ROLE bench_t_bench_{i} RENAME TO bench_t_bench_claimed_{i}")
            rename.append(time.perf_counter() - started)
        results["replay"], results["spare"] = ms(replay), ms(rename)
        request = []
        for n in range(200):
            schema = f"t_bench_claimed_{n % N}"
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(f"SELECT set_config('search_path', '{schema}', true), "
                             f"set_config('role', 'bench_{schema}', true)")  # fmt: skip
                conn.execute("INSERT INTO agents_agent (uid, created_at, updated_at, name, status, language, voice, "
                             "prompt) VALUES (%s, now(), now(), 'a', 'draft', 'en', '', '') RETURNING id",
                             [agent_uid()])  # fmt: skip
                conn.execute("SELECT * FROM agents_agent WHERE id = 1").fetchall()
            request.append(time.perf_counter() - started)
        results["request"] = ms(request[20:])  # after each role's first connection to its worker
        for i in range(N):
            drop(conn, f"t_bench_claimed_{i}")
    return results


def main() -> None:
    ensure(PLAIN)
    ddl = template_ddl()
    plain = run(PLAIN, ddl, citus=False)
    cluster = run(CITUS, ddl, citus=True)
    print(f"{'':<10} {'plain p50':>10} {'p95':>8} {'citus p50':>10} {'p95':>8} {'ratio p50':>10}   ({N} schemas)")
    for key, label in (("replay", "replay"), ("spare", "spare"), ("request", "request")):
        (pp, p95), (cp, c95) = plain[key], cluster[key]
        print(f"{label:<10} {pp:>8.1f}ms {p95:>6.1f}ms {cp:>8.1f}ms {c95:>6.1f}ms {cp / pp:>9.1f}x")


if __name__ == "__main__":
    main()
