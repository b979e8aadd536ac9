"""Request latency with few vs many organizations in the database: GET .../agents?limit=50 for 10 organizations
in turn, measured with 10 organizations present and again after growing to N (default 5,000).

Usage: .venv/bin/python bench/scale.py [organizations]
"""

import sys
import time

from common import fresh_database, machine, summary, timed


def main(total: int) -> None:
    fresh_database()
    from django.core.cache import cache
    from django.test import Client

    from public_app.models import User
    from public_app.services.auth import token_issue
    from public_app.services.organizations import organization_create
    from public_app.services.provisioning import organization_provision
    from public_app.tenancy import tenant_context
    from tenant_apps.agents.models import Agent

    cache.clear()
    owner = User.objects.create_user("scale@example.com", "a-strong-pass-91", name="Scale")

    def create(i: int) -> None:
        organization = organization_create(user=owner, name=f"Scale {i}", slug=f"scale-{i:05d}")
        organization_provision(organization_id=organization.id)
        organization.refresh_from_db()
        if i < 10:
            with tenant_context(organization):
                Agent.objects.bulk_create([Agent(name=f"agent {n}") for n in range(60)])

    for i in range(10):
        create(i)
    client = Client(headers={"Authorization": f"Bearer {token_issue(user=owner)}"})
    urls = [f"/api/v1/organizations/scale-{i:05d}/agents?limit=50" for i in range(10)]

    def measure(rounds: int = 60) -> dict[str, float]:
        for url in urls * 3:
            client.get(url)
        samples = []
        for _ in range(rounds):
            for url in urls:
                samples.append(timed(lambda url=url: client.get(url)))
        return summary(samples)

    small = measure()
    started = time.perf_counter()
    for i in range(10, total):
        create(i)
    print(f"machine: {machine()}")
    print(f"grew from 10 to {total} organizations in {time.perf_counter() - started:.0f} s")
    large = measure()
    print(f"10 orgs:     p50 {small['p50_ms']:.2f} ms  p95 {small['p95_ms']:.2f} ms")
    print(f"{total} orgs: p50 {large['p50_ms']:.2f} ms  p95 {large['p95_ms']:.2f} ms")
    print(f"latency ratio {total}/10 = {large['p50_ms'] / small['p50_ms']:.2f}x  (target <= 1.2x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
