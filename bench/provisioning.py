"""Provisioning a tenant schema, four ways, measured in one run:

  replay    our template replay (public_app.services.provisioning.schema_create_from_template)
  migrate   CREATE SCHEMA + running every tenant migration (django-tenants' default path)
  clone     django-tenants' clone_schema() SQL function (NODATA), then recording migrations as applied
  floor     psql: CREATE SCHEMA + the same DDL in one transaction (no Python, no Django): the lower bound
  spare     what provisioning does when the spare pool has a schema ready: one ALTER SCHEMA ... RENAME
            (the pool is refilled after the request, off the clock, by a job)

Usage: .venv/bin/python bench/provisioning.py [iterations]
"""

import subprocess
import sys

from common import fresh_database, machine, summary, timed


def main(iterations: int) -> None:
    fresh_database()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django_tenants.clone import CloneSchema

    from public_app.services import provisioning

    template = provisioning.template_get()
    params = connection.settings_dict
    counter = iter(range(10**6))

    def name(kind: str) -> str:
        return f"t_bench_{kind}_{next(counter)}"

    def replay() -> None:
        provisioning.schema_create_from_template(name("replay"), template)

    def migrate() -> None:
        schema = name("migrate")
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        provisioning.migrate_schema(schema)

    clone_schema = CloneSchema()

    def clone() -> None:
        schema = name("clone")
        clone_schema.clone_schema(settings.TENANT_TEMPLATE_SCHEMA, schema, "NODATA")
        call_command("migrate_schemas", tenant=True, fake=True, schema_name=schema, interactive=False, verbosity=0)

    def floor() -> None:
        schema = name("floor")
        script = (
            f'BEGIN;\nCREATE SCHEMA "{schema}";\n'
            + template.ddl.replace("__tenant_schema__.", f'"{schema}".')
            + "COMMIT;\n"
        )
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(params["HOST"]), "-p", str(params["PORT"]),
             "-U", str(params["USER"]), "-d", str(params["NAME"])],
            input=script.encode(), check=True, capture_output=True,
        )  # fmt: skip

    from django.db import transaction

    settings.TENANT_SPARE_SCHEMAS = iterations + 2
    provisioning.spares_refill()  # the pool, built ahead (not timed)

    def spare() -> None:
        with transaction.atomic():
            assert provisioning.spare_claim(name("spare"))

    methods = {"floor": floor, "replay": replay, "spare": spare, "clone": clone, "migrate": migrate}
    results: dict[str, dict[str, float]] = {}
    for label, func in methods.items():
        func()  # warm-up
        runs = iterations if label != "migrate" else max(5, iterations // 4)
        results[label] = summary([timed(func) for _ in range(runs)])
    print(f"machine: {machine()}")
    print(f"tenant DDL: {template.ddl.count(';')} statements, {len(template.migrations)} migration rows")
    print(f"{'method':<8} {'p50 ms':>9} {'p95 ms':>9} {'n':>4}")
    for label, stats in results.items():
        print(f"{label:<8} {stats['p50_ms']:>9.1f} {stats['p95_ms']:>9.1f} {stats['n']:>4}")
    floor_p50 = results["floor"]["p50_ms"]
    replay_p50 = results["replay"]["p50_ms"]
    print(f"replay / floor   = {replay_p50 / floor_p50:.2f}x   (target <= 1.5x)")
    print(f"migrate / replay = {results['migrate']['p50_ms'] / replay_p50:.1f}x  (target >= 20x)")
    print(f"clone / replay   = {results['clone']['p50_ms'] / replay_p50:.1f}x")
    spare_p50 = results["spare"]["p50_ms"]
    print(
        f"with the spare pool: spare / floor = {spare_p50 / floor_p50:.3f}x, "
        f"migrate / spare = {results['migrate']['p50_ms'] / spare_p50:.0f}x"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
