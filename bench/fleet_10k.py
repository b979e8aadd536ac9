"""Fleet operations at 10,000 organizations (default N = 10,000), on a fleet built once and reused by later runs.

Usage: .venv/bin/python bench/fleet_10k.py [N] [--rebuild]
       .venv/bin/python bench/fleet_10k.py --drop        (drop the bench's databases and their tenant roles)

Its own database (BENCH_DATABASE_URL, default .../orgs_bench_10k) holds organizations `fleet-00000`…, each
created with `organization_create` and provisioned with `organization_provision` in 2 worker processes; a run that
finds N of them active measures at once (missing ones are added; `--rebuild` starts from an empty database). A
second, small database (`<name>_10`) holds 10 organizations only. Measured, in this order:

1. `GET /api/v1/organizations/<slug>/agents?limit=50` over 10 organizations with 60 agents each (Django's test
   client, in process): with 10 organizations in the database and with N, in interleaved rounds (one process per
   database, taking turns), p50/p99 and their ratio (target <= 1.2x);
2. `organization_provision` of 50 new organizations with the spare pool drained (template replay) and with 50
   spares (`spares_refill()`, then a rename each), among N; those organizations are purged afterwards;
3. a no-op `manage.py orgs migrate --jobs 2` (target <= 5 s);
4. `orgs migrate --jobs 2` with one new tenant migration (a temporary AddField), then with a second one
   (RemoveField of the same column): the migration files are removed afterwards and their records deleted from
   every schema, so the fleet is back at the code's migration state for the next run (target <= 100 s at 10,000);
5. `orgs check` and `orgs list --json`;
6. `orgs snapshot` and `orgs restore --from` of one organization (then `--discard` of the schema it replaced);
7. database size, catalog size, relations and roles;
8. a PostgreSQL backend's memory after touching 1, 100, 1,000 and N schemas through one connection (smaps_rollup of
   the backend process: run on the database's machine, as root or as the postgres user).

Then a Markdown summary for docs/benchmarks.md. The machine is shared and noisy: compare ratios within one run.
"""

import json
import math
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orgs_bench_10k")
os.environ.setdefault("CACHE_KEY_PREFIX", "orgs-bench-10k")
os.environ.setdefault("BROKER_NAMESPACE", "orgs-bench-10k")
os.environ.setdefault("TENANT_SPARE_SCHEMAS", "0")  # no job refills the pool here; the provisioning part sets it
os.environ.setdefault("LOG_LEVEL", "WARNING")  # one INFO line per provisioned organization is 10,000 lines

import psycopg
from common import BENCH_DB, ROOT, machine, setup_django
from psycopg import sql

SMALL_DB = BENCH_DB + "_10"
SMALL_CACHE_PREFIX = os.environ["CACHE_KEY_PREFIX"] + "-10"
OWNER_EMAIL = "fleet@example.com"
MEASURED = 10  # organizations the requests rotate over
AGENTS = 60
EXTRA_PREFIX = "bench-prov-"  # the provisioning measurement's organizations (purged after it)
PROVISIONED = 50
CHECK_TIMEOUT = float(os.environ.get("FLEET_10K_CHECK_TIMEOUT", "900"))
LATENCY_ROUNDS = 10
PASSES_PER_ROUND = 10
BUILD_JOBS = 2
BUILD_CHUNK = 100

MIGRATIONS = ROOT / "tenant_apps" / "agents" / "migrations"
ADD_FIELD = MIGRATIONS / "0900_bench_fleet_10k_note.py"
REMOVE_FIELD = MIGRATIONS / "0901_bench_fleet_10k_note_drop.py"
FIELD = "bench_fleet_10k_note"
ADD_SOURCE = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("agents", "{previous}")]
    operations = [migrations.AddField("agent", "{field}", models.TextField(null=True))]
"""
REMOVE_SOURCE = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("agents", "{previous}")]
    operations = [migrations.RemoveField("agent", "{field}")]
"""

Row = tuple[str, str, str, str]  # summary: what, how, result, target
summary_rows: list[Row] = []


def fleet_slug(index: int) -> str:
    return f"fleet-{index:05d}"


FLEET_SLUG_RE = r"^fleet-[0-9]{5}$"


# --- databases -------------------------------------------------------------------------------------------------


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def role_prefix(url: str) -> str:
    """The tenant roles of the database at `url` (public_app.tenancy: its name, sanitised, and `_`), then `t_`."""
    return re.sub(r"[^a-z0-9_]", "_", database_name(url).lower()) + "_t_"


def database_exists(url: str) -> bool:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database_name(url)]).fetchone()
    return found is not None


def database_drop(url: str) -> None:
    """Drop the database and its tenant roles (cluster-wide: only those named after this database)."""
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database_name(url))))
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [role_prefix(url)])
        for (role,) in roles.fetchall():
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def database_create(url: str) -> None:
    database_drop(url)
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name(url))))


def migrate_public() -> None:
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


# --- the fleet -------------------------------------------------------------------------------------------------


def owner_get() -> Any:
    from public_app.models import User

    return User.objects.filter(email=OWNER_EMAIL).first() or User.objects.create_user(
        OWNER_EMAIL, "a-strong-pass-91", name="Fleet"
    )


def fleet_missing(count: int) -> list[int]:
    """Indices below `count` whose organization is absent or not active."""
    from public_app.models import Organization, OrganizationStatus

    active = set(
        Organization.objects.filter(slug__regex=FLEET_SLUG_RE, status=OrganizationStatus.ACTIVE).values_list(
            "slug", flat=True
        )
    )
    return [i for i in range(count) if fleet_slug(i) not in active]


def fleet_provision(indices: Iterable[int], owner_id: int) -> int:
    """Create (unless it exists) and provision each organization; returns how many."""
    from public_app.models import Organization, User
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import organization_provision

    owner = User.objects.get(id=owner_id)
    done = 0
    for i in indices:
        organization = Organization.objects.filter(slug=fleet_slug(i)).first()
        if organization is None:
            organization = organization_create(user=owner, name=f"Fleet {i}", slug=fleet_slug(i))
        organization_provision(organization_id=organization.id)
        done += 1
    return done


def _build_worker_init() -> None:
    setup_django()


def _build_chunk(indices: list[int], owner_id: int) -> int:
    return fleet_provision(indices, owner_id)


def fleet_build(missing: list[int], owner_id: int, total: int) -> float:
    """Provision `missing` in BUILD_JOBS spawned processes (each sets Django up and opens its own connections);
    returns the seconds it took."""
    from public_app.services.provisioning import template_get

    template_get()  # built once here, so the workers only find it current
    close_django_connections()  # nothing of this process's is inherited (spawned, but be explicit)
    chunks = [missing[i : i + BUILD_CHUNK] for i in range(0, len(missing), BUILD_CHUNK)]
    started = time.perf_counter()
    done, reported = 0, 0
    step = max(len(missing) // 10, 1)
    with ProcessPoolExecutor(
        max_workers=BUILD_JOBS, mp_context=multiprocessing.get_context("spawn"), initializer=_build_worker_init
    ) as pool:
        for future in as_completed([pool.submit(_build_chunk, chunk, owner_id) for chunk in chunks]):
            done += future.result()
            if done - reported >= step or done == len(missing):
                reported = done
                elapsed = time.perf_counter() - started
                print(
                    f"  [{done}/{len(missing)}] {elapsed:.0f} s, {elapsed / done * 1000:.1f} ms per organization "
                    f"(of {total})",
                    flush=True,
                )
    return time.perf_counter() - started


def agents_ensure(indices: Iterable[int]) -> None:
    """AGENTS agents in each of these fleet organizations."""
    from public_app.models import Organization
    from public_app.tenancy import tenant_context
    from tenant_apps.agents.models import Agent

    for i in indices:
        organization = Organization.objects.get(slug=fleet_slug(i))
        with tenant_context(organization):
            present = Agent.objects.count()
            if present < AGENTS:
                Agent.objects.bulk_create([Agent(name=f"agent {n}") for n in range(present, AGENTS)])


def fleet_catch_up() -> None:
    """Schemas behind the code's tenant migrations (the code moved since the fleet was built): migrate them first,
    so that the no-op measured later is one."""
    from public_app.models import Organization, OrganizationStatus
    from public_app.services.fleet.migrations import migrate_fleet
    from public_app.services.provisioning import migration_state

    behind = Organization.objects.filter(status=OrganizationStatus.ACTIVE).exclude(migration_state=migration_state())
    if behind.exists():
        print(f"{behind.count()} organization(s) behind the code's migrations: migrating them first", flush=True)
        result = migrate_fleet(jobs=BUILD_JOBS)
        if result["failed"]:
            raise SystemExit(f"catching up failed: {result['failed']}")


# --- leftovers of an interrupted run ---------------------------------------------------------------------------


def migration_files_remove() -> None:
    for path in (REMOVE_FIELD, ADD_FIELD):
        path.unlink(missing_ok=True)
    for cached in (MIGRATIONS / "__pycache__").glob("090[01]_bench_fleet_10k_*"):
        cached.unlink()


def bench_migration_states() -> list[str]:
    """The migration states the organizations are recorded at after the AddField, and after the RemoveField."""
    from public_app.services.provisioning import state_of, tenant_migrations

    add, remove = ("agents", ADD_FIELD.stem), ("agents", REMOVE_FIELD.stem)
    return [state_of(tenant_migrations() | {add}), state_of(tenant_migrations() | {add, remove})]


def bench_migrations_forget(*, drop_column: bool) -> float:
    """Put every schema back at the code's state: delete the bench migrations' records (and, after an interrupted
    run, the column), then record the code's state on the organizations. One short transaction per schema."""
    from public_app.services.provisioning import migration_state

    started = time.perf_counter()
    with psycopg.connect(BENCH_DB, autocommit=True, prepare_threshold=None) as conn:
        schemas = [
            s
            for (s,) in conn.execute(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = 'django_migrations' AND c.relkind = 'r' AND n.nspname <> 'public'"
            ).fetchall()
        ]
        names = [ADD_FIELD.stem, REMOVE_FIELD.stem]
        for schema in schemas:
            quoted = sql.Identifier(schema)
            if drop_column:
                conn.execute(
                    sql.SQL("ALTER TABLE IF EXISTS {}.agents_agent DROP COLUMN IF EXISTS {}").format(
                        quoted, sql.Identifier(FIELD)
                    )
                )
            conn.execute(
                sql.SQL("DELETE FROM {}.django_migrations WHERE app = 'agents' AND name = ANY(%s)").format(quoted),
                [names],
            )
        conn.execute(
            "UPDATE public_app_organization SET migration_state = %s WHERE migration_state = ANY(%s)",
            [migration_state(), bench_migration_states()],
        )
    return time.perf_counter() - started


def leftovers_clear() -> None:
    """What an interrupted run may have left: organizations at the bench migrations' states, the provisioning
    measurement's organizations, spare schemas."""
    from public_app.models import Organization

    if Organization.objects.filter(migration_state__in=bench_migration_states()).exists():
        print("an earlier run stopped during the migration part: putting the schemas back", flush=True)
        bench_migrations_forget(drop_column=True)
    extras_purge()
    spares_drop()


def extras_purge() -> None:
    from public_app.models import Organization
    from public_app.services.fleet.repair import purge_now

    for organization in Organization.objects.filter(slug__startswith=EXTRA_PREFIX):
        purge_now(organization=organization)


def spares_drop() -> None:
    from django.db import connection, transaction
    from django_tenants.utils import quote_schema_name

    from public_app.models import SpareSchema
    from public_app.tenant_roles import role_drop

    for spare in SpareSchema.objects.all():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(spare.name)} CASCADE")
            role_drop(spare.name)
            spare.delete()


def cache_forget() -> None:
    """Drop this process's cache entries (its CACHE_KEY_PREFIX only: the Redis database is shared, so no FLUSHDB,
    which is what `cache.clear()` sends). A rebuilt database reuses organization ids and slugs that older entries
    name."""
    from django.conf import settings
    from django.core.cache import cache

    if not settings.CACHE_URL.startswith(("redis://", "rediss://")):
        cache.clear()  # the database cache: a table of the bench database
        return
    import redis

    client = redis.Redis.from_url(settings.CACHE_URL)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)


def broker_leftovers_clear() -> None:
    """No worker runs against the bench databases: the jobs their writes asked for (outbox rows, and the messages
    relayed to the broker under this bench's namespace) are dropped, so they do not pile up run after run."""
    from django.conf import settings

    from public_app.models import OutboxMessage

    OutboxMessage.objects.all().delete()
    if settings.BROKER_URL.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(settings.BROKER_URL)
        for key in client.scan_iter(match=f"{settings.BROKER_NAMESPACE}:*", count=1000):
            client.delete(key)


# --- measuring -------------------------------------------------------------------------------------------------


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def p50_p99_ms(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000


def record(what: str, how: str, result: str, target: str = "") -> None:
    summary_rows.append((what, how, result, target))


def orgs(*args: str, timeout: float | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """`manage.py orgs ARGS` in a new process on the bench database: (seconds, the finished process). Past
    `timeout` the process is killed and raises subprocess.TimeoutExpired."""
    env = {**os.environ, "DATABASE_URL": BENCH_DB}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "orgs", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    return time.perf_counter() - started, result


def orgs_ok(*args: str) -> tuple[float, str]:
    """As `orgs`, failing the benchmark when the command fails; (seconds, last line of its output)."""
    seconds, result = orgs(*args)
    if result.returncode != 0:
        raise SystemExit(
            f"orgs {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    lines = result.stdout.strip().splitlines()
    return seconds, lines[-1] if lines else ""


def process_start_seconds() -> float:
    """A new Python process setting Django up on the bench database: the floor under every `orgs` command."""
    env = {**os.environ, "DATABASE_URL": BENCH_DB, "DJANGO_SETTINGS_MODULE": "config.settings"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=ROOT, check=True)
    return time.perf_counter() - started


# 1. Request latency: one process per database, taking turns -----------------------------------------------------


def latency_server(database_url: str, cache_prefix: str, small: bool, pipe: Connection) -> None:
    """A spawned process serving measurement rounds on one database (settings are read once per process, so each
    database gets its own): builds the small database first when asked, then answers each round's pass count with
    that round's request timings."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["CACHE_KEY_PREFIX"] = cache_prefix
    built = 0.0
    if small and not database_exists(database_url):
        database_create(database_url)
    setup_django()
    if small:
        started = time.perf_counter()
        migrate_public()
        missing = fleet_missing(MEASURED)
        if missing:
            fleet_provision(missing, owner_get().id)
            built = time.perf_counter() - started
        fleet_catch_up()
    agents_ensure(range(MEASURED))
    from django.test import Client

    from public_app.models import Organization
    from public_app.services.auth import token_issue

    cache_forget()
    organizations = Organization.objects.count()
    client = Client(headers={"Authorization": f"Bearer {token_issue(user=owner_get())}"})
    urls = [f"/api/v1/organizations/{fleet_slug(i)}/agents?limit=50" for i in range(MEASURED)]
    for url in urls:
        response = client.get(url)
        if response.status_code != 200 or len(response.json()["items"]) != 50:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.content[:300]!r}")
    pipe.send({"organizations": organizations, "built": built})
    while (passes := pipe.recv()) is not None:
        for url in urls * 2:  # warm again: the other database's round ran meanwhile
            client.get(url)
        samples = []
        for _ in range(passes):
            for url in urls:
                started = time.perf_counter()
                client.get(url)
                samples.append(time.perf_counter() - started)
        pipe.send(samples)
    cache_forget()


def measure_requests(count: int) -> None:
    print(
        f"\n## 1. GET /api/v1/organizations/<slug>/agents?limit=50 over {MEASURED} organizations of {AGENTS} "
        f"agents: {MEASURED} vs {count} organizations in the database",
        flush=True,
    )
    close_django_connections()
    context = multiprocessing.get_context("spawn")
    servers: dict[str, tuple[Any, Connection]] = {}
    for label, url, prefix, small in (
        ("small", SMALL_DB, SMALL_CACHE_PREFIX, True),
        ("fleet", BENCH_DB, os.environ["CACHE_KEY_PREFIX"], False),
    ):
        ours, theirs = context.Pipe()
        process = context.Process(target=latency_server, args=(url, prefix, small, theirs), daemon=True)
        process.start()
        servers[label] = (process, ours)
    try:
        info = {label: pipe.recv() for label, (_, pipe) in servers.items()}
        if info["small"]["built"]:
            print(f"built {database_name(SMALL_DB)} with {MEASURED} organizations in {info['small']['built']:.1f} s")
        samples: dict[str, list[float]] = {"small": [], "fleet": []}
        round_ratios = []
        for round_ in range(LATENCY_ROUNDS):
            order = ["small", "fleet"] if round_ % 2 == 0 else ["fleet", "small"]
            this_round = {}
            for label in order:
                servers[label][1].send(PASSES_PER_ROUND)
                this_round[label] = servers[label][1].recv()
                samples[label] += this_round[label]
            round_ratios.append(statistics.median(this_round["fleet"]) / statistics.median(this_round["small"]))
    finally:
        for process, pipe in servers.values():
            if process.is_alive():
                pipe.send(None)
            process.join(30)
    small_p50, small_p99 = p50_p99_ms(samples["small"])
    fleet_p50, fleet_p99 = p50_p99_ms(samples["fleet"])
    per_db = f"{LATENCY_ROUNDS} interleaved rounds x {PASSES_PER_ROUND * MEASURED} requests per database"
    print(f"{per_db}; Django test client in process, one process per database")
    print(f"{info['small']['organizations']:>6} organizations: p50 {small_p50:.2f} ms  p99 {small_p99:.2f} ms")
    print(f"{info['fleet']['organizations']:>6} organizations: p50 {fleet_p50:.2f} ms  p99 {fleet_p99:.2f} ms")
    ratio = fleet_p50 / small_p50
    print(
        f"ratio {count}/{MEASURED}: p50 {ratio:.2f}x (the rounds' own: median {statistics.median(round_ratios):.2f}x, "
        f"range {min(round_ratios):.2f}-{max(round_ratios):.2f}), p99 {fleet_p99 / small_p99:.2f}x  "
        f"(target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})"
    )
    how = f"`GET …/agents?limit=50`, {MEASURED} orgs × {AGENTS} agents, {per_db}"
    record(f"request, {MEASURED} organizations", how, f"p50 {small_p50:.2f} ms, p99 {small_p99:.2f} ms")
    record(f"request, {count:,} organizations", how, f"p50 {fleet_p50:.2f} ms, p99 {fleet_p99:.2f} ms")
    record(
        f"request latency {count:,} / {MEASURED}",
        "same run",
        f"**{ratio:.2f}×** p50, {fleet_p99 / small_p99:.2f}× p99",
        "≤ 1.2×",
    )


# 2. Provisioning among N ------------------------------------------------------------------------------------------


def provision_samples(owner: Any, kind: str) -> list[float]:
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import organization_provision

    samples = []
    for i in range(PROVISIONED):
        organization = organization_create(
            user=owner, name=f"Provisioned {kind} {i}", slug=f"{EXTRA_PREFIX}{kind}-{i:02d}"
        )
        started = time.perf_counter()
        organization_provision(organization_id=organization.id)
        samples.append(time.perf_counter() - started)
    return samples


def measure_provisioning(count: int) -> None:
    from django.conf import settings

    from public_app.models import Organization, OrganizationStatus, SpareSchema
    from public_app.services.provisioning import spares_refill, template_get

    print(f"\n## 2. organization_provision of {PROVISIONED} new organizations among {count}", flush=True)
    owner = owner_get()
    template_get()
    spares_drop()
    settings.TENANT_SPARE_SCHEMAS = 0
    drained = provision_samples(owner, "drained")
    settings.TENANT_SPARE_SCHEMAS = PROVISIONED
    started = time.perf_counter()
    built = spares_refill()
    refill = time.perf_counter() - started
    spare = provision_samples(owner, "spare")
    left = SpareSchema.objects.count()
    settings.TENANT_SPARE_SCHEMAS = 0
    active = Organization.objects.filter(slug__startswith=EXTRA_PREFIX, status=OrganizationStatus.ACTIVE).count()
    started = time.perf_counter()
    extras_purge()
    spares_drop()
    purged = time.perf_counter() - started
    d50, d99 = p50_p99_ms(drained)
    s50, s99 = p50_p99_ms(spare)
    print(f"pool drained (TENANT_SPARE_SCHEMAS=0, template replay): p50 {d50:.1f} ms  p99 {d99:.1f} ms")
    print(
        f"spares_refill() with TENANT_SPARE_SCHEMAS={PROVISIONED}: built {built} spares in {refill:.1f} s "
        f"({refill / max(built, 1) * 1000:.0f} ms each)"
    )
    print(
        f"full pool (a spare renamed into place):           p50 {s50:.1f} ms  p99 {s99:.1f} ms  "
        f"({PROVISIONED - left} spares used, {left} left)"
    )
    print(
        f"replay / spare p50 = {d50 / s50:.0f}x; {active} of {2 * PROVISIONED} active; purged them (and the pool) in "
        f"{purged:.1f} s, the fleet is back at {count}"
    )
    record(
        "provision, pool drained",
        f"`organization_provision`, TENANT_SPARE_SCHEMAS=0, {PROVISIONED} orgs",
        f"p50 {d50:.1f} ms, p99 {d99:.1f} ms",
    )
    record(
        "provision, full pool",
        f"`spares_refill()` ({PROVISIONED} spares, {refill:.1f} s), then {PROVISIONED} orgs",
        f"p50 {s50:.1f} ms, p99 {s99:.1f} ms",
    )


# 3-5. The orgs commands -----------------------------------------------------------------------------------------


def measure_migrations(count: int) -> None:
    print(f"\n## 3. no-op `manage.py orgs migrate --jobs 2` over {count}", flush=True)
    floor = process_start_seconds()
    print(f"(a new process setting Django up, the floor under every command: {floor:.2f} s)")
    noop, line = orgs_ok("migrate", "--jobs", "2")
    print(f"`orgs migrate --jobs 2`: {noop:.2f} s  ({line})  (target <= 5 s: {'met' if noop <= 5 else 'NOT met'})")
    record("process start (floor)", "`python -c 'import django; django.setup()'`", f"{floor:.2f} s")
    record("no-op migrate", "`orgs migrate --jobs 2`", f"**{noop:.2f} s**", "≤ 5 s")

    print(
        f"\n## 4. one new tenant migration over {count}: `orgs migrate --jobs 2` (AddField, then RemoveField)",
        flush=True,
    )
    previous = sorted(p.stem for p in MIGRATIONS.glob("0*.py") if p not in (ADD_FIELD, REMOVE_FIELD))[-1]
    clean = False
    try:
        ADD_FIELD.write_text(ADD_SOURCE.format(previous=previous, field=FIELD))
        add, line = orgs_ok("migrate", "--jobs", "2")
        print(
            f"AddField:    {add:.1f} s ({add / count * 1000:.2f} ms per schema)  ({line})  "
            f"(target <= 100 s at 10,000: {'met' if add <= 100 else 'NOT met'})"
        )
        REMOVE_FIELD.write_text(REMOVE_SOURCE.format(previous=ADD_FIELD.stem, field=FIELD))
        remove, line = orgs_ok("migrate", "--jobs", "2")
        print(f"RemoveField: {remove:.1f} s ({remove / count * 1000:.2f} ms per schema)  ({line})")
        clean = True
    finally:
        migration_files_remove()
        forget = bench_migrations_forget(drop_column=not clean)
        print(
            f"removed both migration files; deleted their records in every schema and recorded the code's state "
            f"again in {forget:.1f} s"
        )
    record(
        "new migration (AddField)",
        "`orgs migrate --jobs 2`",
        f"**{add:.1f} s** ({add / count * 1000:.2f} ms/schema)",
        "≤ 100 s (10,000)",
    )
    record("new migration (RemoveField)", "`orgs migrate --jobs 2`", f"{remove:.1f} s")
    fleet_verify_state()


def fleet_verify_state() -> None:
    """The fleet is at the code's state again: recorded states, migration records and the column (a quick check of
    what `orgs check` verifies in depth)."""
    from public_app.models import Organization
    from public_app.services.provisioning import migration_state

    behind = Organization.objects.exclude(migration_state=migration_state()).count()
    with psycopg.connect(BENCH_DB, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attname = %s AND NOT attisdropped", [FIELD]
        ).fetchone()[0]
    print(
        f"after: {behind} organization(s) recorded at another state than the code's, {columns} table(s) with the column"
    )
    if behind or columns:
        raise SystemExit("the fleet was not put back at the code's migration state")


def drift_costs(sample: int = 20) -> dict[str, float]:
    """Milliseconds per schema of the per-schema queries `orgs check` runs (public_app.services.fleet.drift), on
    `sample` fleet schemas: what its time grows with."""
    from public_app.models import Organization
    from public_app.tenant_roles import role_extra_grants, role_has_own_grants

    schemas = list(
        Organization.objects.filter(slug__regex=FLEET_SLUG_RE)
        .order_by("id")
        .values_list("schema_name", flat=True)[:sample]
    )
    costs = {}
    for check in (role_has_own_grants, role_extra_grants):
        started = time.perf_counter()
        for schema in schemas:
            check(schema)
        costs[check.__name__] = (time.perf_counter() - started) / len(schemas) * 1000
    return costs


def measure_inventory(count: int) -> None:
    print(f"\n## 5. `orgs check` and `orgs list --json` over {count}", flush=True)
    costs = drift_costs()
    estimate = sum(costs.values()) * count / 1000
    print(
        "`orgs check`'s role checks per schema (20 schemas, in process): "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in costs.items())
        + f"; x {count} = ~{estimate:.0f} s for those alone"
    )
    try:
        seconds, result = orgs("check", timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"`orgs check`: did not finish in {CHECK_TIMEOUT:.0f} s (killed; FLEET_10K_CHECK_TIMEOUT to wait longer)")
        record("check", "`orgs check`", f"**> {CHECK_TIMEOUT:.0f} s** (killed; ~{estimate:.0f} s estimated)")
    else:
        verdict = result.stdout.strip().splitlines()[0] if result.stdout.strip() else result.stderr.strip()[-300:]
        print(f"`orgs check`: {seconds:.1f} s, exit {result.returncode}: {verdict}")
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
        record("check", "`orgs check`", f"{seconds:.1f} s ({verdict})")
    record(
        "check: role checks per schema",
        "`role_has_own_grants` + `role_extra_grants`, 20 schemas",
        f"{sum(costs.values()):.1f} ms ({costs['role_extra_grants']:.1f} ms the latter)",
    )
    seconds, result = orgs("list", "--json")
    if result.returncode != 0:
        raise SystemExit(f"orgs list --json failed:\n{result.stderr[-3000:]}")
    rows = json.loads(result.stdout)
    current = sum(1 for row in rows if row["migrations"] == "current")
    print(
        f"`orgs list --json`: {seconds:.1f} s, {len(rows)} organizations ({current} current), "
        f"{len(result.stdout) / 1024 / 1024:.1f} MiB of JSON"
    )
    record("list", "`orgs list --json`", f"{seconds:.1f} s ({len(rows):,} rows)")


# 6. Snapshot and restore -----------------------------------------------------------------------------------------


def measure_snapshot() -> None:
    slug = fleet_slug(0)
    print(f"\n## 6. `orgs snapshot {slug} FILE` and `orgs restore {slug} --from FILE`", flush=True)
    with tempfile.TemporaryDirectory(prefix="fleet-10k-") as tmp:
        path = Path(tmp) / f"{slug}.tar.gz"
        steps = (
            ("snapshot", ("snapshot", slug, str(path))),
            ("restore", ("restore", slug, "--from", str(path))),
            ("discard", ("restore", slug, "--discard", "--yes")),
        )
        for name, args in steps:
            try:
                seconds, result = orgs(*args)
            except OSError as exc:
                print(f"`orgs {' '.join(args)}`: not available ({exc})")
                record(name, f"`orgs {args[0]}`", "not available")
                return
            if result.returncode != 0 and "invalid choice" in result.stderr:
                print(f"`orgs {args[0]}`: not available (no such subcommand yet)")
                record(name, f"`orgs {args[0]}`", "not available")
                return
            if result.returncode != 0:
                print(
                    f"`orgs {' '.join(args)}` FAILED in {seconds:.1f} s:\n{result.stdout[-1500:]}\n"
                    f"{result.stderr[-1500:]}"
                )
                record(name, f"`orgs {args[0]}`", f"failed ({seconds:.1f} s)")
                return
            lines = result.stdout.strip().splitlines()
            size = f", {path.stat().st_size / 1024:.0f} KiB" if name == "snapshot" and path.exists() else ""
            print(
                f"`orgs {' '.join(args).replace(tmp, '$TMP')}`: {seconds:.2f} s{size}  "
                f"({lines[-1].replace(tmp, '$TMP') if lines else ''})"
            )
            record(
                name,
                f"`orgs {args[0]}{' --from' if name == 'restore' else ''}"
                f"{' --discard' if name == 'discard' else ''}` (one org, {AGENTS} agents)",
                f"{seconds:.2f} s{size}",
            )
    from public_app.models import Organization
    from public_app.tenancy import tenant_context
    from tenant_apps.agents.models import Agent

    with tenant_context(Organization.objects.get(slug=slug)):
        print(f"{slug} has {Agent.objects.count()} agents after the restore")


# 7. Sizes --------------------------------------------------------------------------------------------------------


def measure_sizes(count: int) -> None:
    print(f"\n## 7. database and catalog size with {count} organizations", flush=True)
    with psycopg.connect(BENCH_DB, autocommit=True) as conn:
        database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        catalog = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'pg_catalog' AND c.relkind = 'r'"
        ).fetchone()[0]
        biggest = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'pg_catalog' AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 3"
        ).fetchall()
        relations = conn.execute("SELECT count(*) FROM pg_class").fetchone()[0]
        kinds = conn.execute("SELECT relkind, count(*) FROM pg_class GROUP BY 1 ORDER BY 2 DESC").fetchall()
        schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'").fetchone()[0]
        roles = conn.execute("SELECT count(*) FROM pg_roles").fetchone()[0]
        ours = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", [role_prefix(BENCH_DB)]
        ).fetchone()[0]
    mib = 1024 * 1024
    print(f"pg_database_size: {database / mib:.0f} MiB ({database / count / 1024:.0f} KiB per organization)")
    print(
        f"catalog (pg_catalog tables with indexes and TOAST): {catalog / mib:.0f} MiB; largest: "
        + ", ".join(f"{name} {size / mib:.0f} MiB" for name, size in biggest)
    )
    print(
        f"relations (pg_class): {relations:,} ({relations / count:.0f} per organization); by kind: "
        + ", ".join(f"{kind} {n:,}" for kind, n in kinds)
    )
    print(
        f"tenant schemas: {schemas:,}; roles in the cluster: {roles:,}, of them this database's tenant roles: {ours:,}"
    )
    record("database size", "`pg_database_size`", f"{database / mib:,.0f} MiB ({database / count / 1024:.0f} KiB/org)")
    record("catalog size", "Σ `pg_total_relation_size` of pg_catalog tables", f"{catalog / mib:,.0f} MiB")
    record("relations", "`count(*) FROM pg_class`", f"{relations:,}")
    record("roles", "`pg_roles` (this database's tenant roles)", f"{roles:,} ({ours:,})")


# 8. Backend memory -----------------------------------------------------------------------------------------------


def backend_memory(conn: psycopg.Connection) -> dict[str, float]:
    """MiB: the backend's Pss, Pss_Anon and Private (smaps_rollup), and its CacheMemoryContext (relcache and catcache
    with their children) as PostgreSQL itself counts it."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        values[key.rstrip(":")] = int(value)
    cache = conn.execute(
        "SELECT sum(total_bytes) FROM pg_backend_memory_contexts "
        "WHERE name = 'CacheMemoryContext' OR parent = 'CacheMemoryContext'"
    ).fetchone()[0]
    return {
        "pss": values["Pss"] / 1024,
        "anon": values.get("Pss_Anon", 0) / 1024,
        "private": (values["Private_Clean"] + values["Private_Dirty"]) / 1024,
        "cache": int(cache) / 1024 / 1024,
    }


def measure_memory(count: int) -> None:
    print(
        "\n## 8. a backend's memory after touching K schemas (one connection, `SET search_path` + a SELECT on "
        "agents_agent per schema)",
        flush=True,
    )
    with psycopg.connect(BENCH_DB, autocommit=True) as conn:
        schemas = [
            s
            for (s,) in conn.execute(
                "SELECT schema_name FROM public_app_organization WHERE slug ~ %s ORDER BY id", [FLEET_SLUG_RE]
            ).fetchall()
        ]
    header = f"{'K':>6} {'touch s':>8} {'Pss MiB':>8} {'Pss_Anon':>8} {'Private':>8} {'CacheCtx':>8} {'KiB/schema':>10}"
    print(header)
    fresh: dict[str, float] = {}
    results: dict[int, dict[str, float]] = {}
    for k in sorted({1, 100, 1000, count} & set(range(1, count + 1))):
        with psycopg.connect(BENCH_DB, autocommit=True) as conn:
            fresh = backend_memory(conn)
            started = time.perf_counter()
            for schema in schemas[:k]:
                quoted = sql.Identifier(schema).as_string(conn)
                conn.execute(f"SET search_path TO {quoted}, public; SELECT id FROM agents_agent LIMIT 1".encode())
            touched = time.perf_counter() - started
            after = results[k] = backend_memory(conn)
            per_schema = (after["private"] - fresh["private"]) * 1024 / k
            results[k]["seconds"] = touched
            print(
                f"{k:>6} {touched:>8.2f} {after['pss']:>8.1f} {after['anon']:>8.1f} {after['private']:>8.1f} "
                f"{after['cache']:>8.1f} {per_schema:>10.1f}"
            )
    with psycopg.connect(BENCH_DB, autocommit=True) as conn:
        conn.execute("SELECT 1")
        recycled = backend_memory(conn)
    print(
        f"{'fresh':>6} {'':>8} {recycled['pss']:>8.1f} {recycled['anon']:>8.1f} {recycled['private']:>8.1f} "
        f"{recycled['cache']:>8.1f}   (a new connection after the runs above)"
    )
    largest = results[max(results)]
    per_schema = (largest["private"] - recycled["private"]) * 1024 / max(results)
    print(
        f"DB_CONN_MAX_AGE (default 60 s) bounds this: Django closes a connection older than that at the start or end "
        f"of a request, and the backend's relcache/catcache (~{per_schema:.0f} KiB private per schema touched here) "
        f"goes with it; its replacement starts at {recycled['private']:.1f} MiB private. A connection kept forever "
        f"(DB_CONN_MAX_AGE=None, or a pooler's long-lived server connection) that serves all {count:,} schemas grows "
        f"to {largest['private']:.0f} MiB private ({largest['cache']:.0f} MiB CacheMemoryContext), per connection, "
        f"and never gives it back."
    )
    for k, values in results.items():
        record(
            f"backend memory, {k:,} schema{'s' if k > 1 else ''} touched",
            "smaps_rollup of `pg_backend_pid()`",
            f"Pss {values['pss']:.0f} MiB, private {values['private']:.0f} MiB, cache ctx {values['cache']:.1f} MiB",
        )
    record("backend memory, fresh connection", "after the above", f"private {recycled['private']:.1f} MiB")


# --- main -------------------------------------------------------------------------------------------------------


def prepare(count: int, rebuild: bool) -> float | None:
    """The fleet at N active organizations, reused when present; returns the build's seconds when it built."""
    migration_files_remove()  # an interrupted run's, before anything reads the migration graph
    if os.environ.get("TENANT_ROLE_PREFIX"):
        raise SystemExit("unset TENANT_ROLE_PREFIX: each bench database needs the roles named after it")
    if rebuild or not database_exists(BENCH_DB):
        print(f"creating {database_name(BENCH_DB)} (and dropping {database_name(SMALL_DB)})", flush=True)
        database_create(BENCH_DB)
        database_drop(SMALL_DB)
    setup_django()
    migrate_public()
    leftovers_clear()
    fleet_catch_up()
    missing = fleet_missing(count)
    built = None
    if missing:
        print(
            f"provisioning {len(missing)} organization(s) in {BUILD_JOBS} processes "
            f"({count - len(missing)} already active)",
            flush=True,
        )
        built = fleet_build(missing, owner_get().id, count)
        still = fleet_missing(count)
        if still:
            raise SystemExit(f"{len(still)} organizations are not active after the build: {still[:10]}")
        print(
            f"built {len(missing)} organizations in {built:.0f} s ({built / len(missing) * 1000:.1f} ms each, "
            f"{BUILD_JOBS} processes)",
            flush=True,
        )
        record(
            "build the fleet",
            f"`organization_create` + `organization_provision`, {BUILD_JOBS} processes",
            f"{built:.0f} s for {len(missing):,} ({built / len(missing) * 1000:.1f} ms each)",
        )
    else:
        print(f"reusing the {count} organizations in {database_name(BENCH_DB)}", flush=True)
    agents_ensure(range(MEASURED))
    return built


def summary_print(count: int) -> None:
    print(
        f"\n## Summary (paste into docs/benchmarks.md)\n\n`.venv/bin/python bench/fleet_10k.py {count}` — {machine()}\n"
    )
    print("| measurement | command / what | result | target |")
    print("|---|---|---|---|")
    for what, how, result, target in summary_rows:
        print(f"| {what} | {how} | {result} | {target} |")


def main(argv: list[str]) -> None:
    if "--drop" in argv:
        for url in (SMALL_DB, BENCH_DB):
            database_drop(url)
            print(f"dropped {database_name(url)} and its tenant roles")
        return
    numbers = [a for a in argv if not a.startswith("--")]
    count = int(numbers[0]) if numbers else 10000
    if count < MEASURED:
        raise SystemExit(f"N must be at least {MEASURED}")
    started = time.perf_counter()
    print(f"machine: {machine()}")
    print(f"database: {database_name(BENCH_DB)} (and {database_name(SMALL_DB)}), N = {count}", flush=True)
    prepare(count, "--rebuild" in argv)
    measure_requests(count)
    setup_django()
    measure_provisioning(count)
    measure_migrations(count)
    measure_inventory(count)
    measure_snapshot()
    measure_sizes(count)
    measure_memory(count)
    broker_leftovers_clear()
    cache_forget()
    summary_print(count)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
