"""Shared setup for the benchmarks: a throwaway database (BENCH_DATABASE_URL, default .../orgs_bench), Django, and
small timing helpers. Benchmarks print ratios measured in the same run; they are not tests."""

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orgs_bench")
os.environ["DATABASE_URL"] = BENCH_DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("RATELIMIT_ENABLED", "false")
os.environ.setdefault("CACHE_KEY_PREFIX", "orgs-bench")
os.environ.setdefault("BROKER_NAMESPACE", "orgs-bench")


def fresh_database() -> None:
    """Drop and recreate the bench database, then set Django up and migrate the public schema."""
    import psycopg
    from psycopg import sql

    name = BENCH_DB.rsplit("/", 1)[1]
    admin_url = BENCH_DB.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        # Tenant roles are cluster-wide: the dropped database's ones go too (public_app.tenancy names them).
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [f"{name}_t_"]):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    setup_django()
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)


def setup_django() -> None:
    import django

    django.setup()


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "n": len(ordered),
    }


def machine() -> str:
    import platform

    cpus = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    return f"{platform.platform()}, {cpus} CPUs, {int(mem) // 1024 // 1024} GiB RAM, Python {platform.python_version()}"


def bench_organizations(agents: int, members: int = 0) -> tuple[Any, Any, str]:
    """A signed-in owner of `bench` (with `agents` agents of 200-character prompts and `members` more members) and
    of a second organization, `bench-other`: (owner, bench, owner's token). Needs `fresh_database()` first."""
    from django.core.cache import cache

    from public_app.models import Membership, Role, User
    from public_app.services.auth import token_issue
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import organization_provision
    from public_app.tenancy import tenant_context
    from tenant_apps.agents.models import Agent

    cache.clear()
    owner = User.objects.create_user("bench@example.com", "a-strong-pass-91", name="Bench")
    org = organization_create(user=owner, name="Bench", slug="bench")
    organization_provision(organization_id=org.id)
    other = organization_create(user=owner, name="Other", slug="bench-other")
    organization_provision(organization_id=other.id)
    org.refresh_from_db()
    if members:
        User.objects.bulk_create([User(email=f"m{i}@example.com", name=f"M{i}") for i in range(members)])
        Membership.objects.bulk_create(
            [Membership(organization=org, user=u, role=Role.MEMBER) for u in User.objects.exclude(id=owner.id)]
        )
    with tenant_context(org):
        Agent.objects.bulk_create([Agent(name=f"agent {i}", prompt="x" * 200) for i in range(agents)])
    return owner, org, token_issue(user=owner)
