"""Fleet operations on N organizations (default 1,000): time to create them, a no-op `orgs migrate`, and
`orgs migrate --jobs 2` after a new tenant migration (a temporary AddField written for the run, removed after):
once the way `orgs migrate` does it (the SQL rendered once per migration state, applied per schema), and, after a
second new migration, with `--force`, which runs Django's executor on every schema (how every run worked before).

Usage: .venv/bin/python bench/fleet.py [organizations]
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DB, ROOT, fresh_database, machine

MIGRATION = ROOT / "tenant_apps" / "agents" / "migrations" / "0900_bench_fleet_note.py"
SECOND = ROOT / "tenant_apps" / "agents" / "migrations" / "0901_bench_fleet_tag.py"
MIGRATION_SOURCE = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("agents", "{previous}")]
    operations = [migrations.AddField("agent", "{field}", models.TextField(null=True))]
"""


def orgs_cli(*args: str) -> tuple[float, str]:
    env = {**os.environ, "DATABASE_URL": BENCH_DB}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "orgs", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=False)  # fmt: skip
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"orgs {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout.strip().splitlines()[-1]


def main(count: int) -> None:
    fresh_database()
    from public_app.models import User
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import organization_provision, template_get

    template_get()
    owner = User.objects.create_user("fleet@example.com", "a-strong-pass-91", name="Fleet")
    started = time.perf_counter()
    for i in range(count):
        organization = organization_create(user=owner, name=f"Fleet {i}", slug=f"fleet-{i:05d}")
        organization_provision(organization_id=organization.id)
    created = time.perf_counter() - started
    print(f"machine: {machine()}")
    print(f"created and provisioned {count} organizations in {created:.1f} s ({created / count * 1000:.1f} ms each)")
    noop, line = orgs_cli("migrate", "--jobs", "2")
    print(f"no-op `orgs migrate --jobs 2` over {count}: {noop:.2f} s  ({line})")
    previous = sorted(p.stem for p in MIGRATION.parent.glob("0*.py") if p not in (MIGRATION, SECOND))[-1]
    MIGRATION.write_text(MIGRATION_SOURCE.format(previous=previous, field="bench_note"))
    try:
        real, line = orgs_cli("migrate", "--jobs", "2")
        print(f"`orgs migrate --jobs 2` with one new migration over {count}: {real:.1f} s "
              f"({real / count * 1000:.1f} ms per schema)  ({line})")  # fmt: skip
        again, line = orgs_cli("migrate", "--jobs", "2")
        print(f"the same again (now a no-op): {again:.2f} s  ({line})")
        SECOND.write_text(MIGRATION_SOURCE.format(previous=MIGRATION.stem, field="bench_tag"))
        slow, line = orgs_cli("migrate", "--jobs", "2", "--force")
        print(f"`orgs migrate --jobs 2 --force` (Django's executor on every schema) with the next new migration: "
              f"{slow:.1f} s ({slow / count * 1000:.1f} ms per schema)  ({line})")  # fmt: skip
        print(f"executor / rendered = {slow / real:.1f}x")
    finally:
        for path in (SECOND, MIGRATION):
            path.unlink(missing_ok=True)
        for cache in Path(MIGRATION.parent / "__pycache__").glob("090[01]_*"):
            cache.unlink()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
