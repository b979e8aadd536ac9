"""`manage.py serve` start-up at fleet size (issue 13): the tenant-schema step before and after.

Baseline: the old start-up migrated every tenant schema one by one (`migrate_schema` on each, ~2.5–4 min at
1,300 organizations in the report). Now: `fleet.migrations.migrate_fleet`, which skips schemas already at head
and migrates the rest in parallel. Both run here, in this process, over the same N current schemas (default 1,000).

Usage: .venv/bin/python bench/startup.py [organizations]
"""

import sys
import time

from common import fresh_database, machine


def main(count: int) -> None:
    fresh_database()
    from public_app.models import Organization, User
    from public_app.services.fleet import migrations
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import migrate_schema, organization_provision, template_get

    template_get()
    owner = User.objects.create_user("startup@example.com", "a-strong-pass-91", name="Startup")
    for i in range(count):
        organization = organization_create(user=owner, name=f"Startup {i}", slug=f"startup-{i:05d}")
        organization_provision(organization_id=organization.id)
    schemas = list(Organization.objects.order_by("id").values_list("schema_name", flat=True))
    started = time.perf_counter()
    for schema in schemas:
        migrate_schema(schema)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    result = migrations.migrate_fleet(jobs=2)
    now = time.perf_counter() - started
    print(f"machine: {machine()}")
    print(
        f"{count} current tenant schemas at start-up: every schema migrated one by one {baseline:.1f} s; "
        f"skip-current fleet migrate {now:.2f} s ({result['skipped']} skipped); ratio {baseline / now:.0f}x"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
