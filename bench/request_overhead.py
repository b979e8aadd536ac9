"""Request overhead of the tenant schema: GET .../agents?limit=50 (tenant table, path and role pinned per
transaction) against GET .../members?limit=50 (public tables) through the same stack (middleware, ninja, OrgAuth,
pagination), with the same caller, in the same process. Also counts the SQL statements of each request.

Usage: .venv/bin/python bench/request_overhead.py [requests]
"""

import sys

from common import bench_organizations, fresh_database, machine, summary, timed


def main(requests: int) -> None:
    fresh_database()
    from django.db import connection
    from django.test import Client

    _, _, token = bench_organizations(agents=60, members=60)
    client = Client(headers={"Authorization": f"Bearer {token}"})
    urls = {"tenant": "/api/v1/organizations/bench/agents?limit=50",
            "public": "/api/v1/organizations/bench/members?limit=50"}  # fmt: skip

    def hit(url: str) -> None:
        response = client.get(url)
        assert response.status_code == 200, response.content

    for url in urls.values():
        for _ in range(50):
            hit(url)  # warm-up: caches, connection, code paths
    samples: dict[str, list[float]] = {k: [] for k in urls}
    for _ in range(requests):  # interleaved, so drift affects both equally
        for kind, url in urls.items():
            samples[kind].append(timed(lambda url=url: hit(url)))
    print(f"machine: {machine()}")
    for kind, url in urls.items():
        stats = summary(samples[kind])
        print(f"{kind:<7} {url:<48} p50 {stats['p50_ms']:.2f} ms  p95 {stats['p95_ms']:.2f} ms  n={stats['n']}")
    tenant, public = summary(samples["tenant"])["p50_ms"], summary(samples["public"])["p50_ms"]
    print(f"throughput ratio tenant/public = {public / tenant:.2f}x  (target >= 0.9x)")

    # SQL per request, seen by an execute wrapper: every statement, with the tenant pin it carries (config.db)
    def statements_of(url: str) -> list[str]:
        seen: list[str] = []

        def wrapper(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            # what the driver really sent: the statement with the pin config.db put in front of it, if any
            seen.append(connection.ops.last_executed_query(context["cursor"].cursor, sql, params))
            return result

        with connection.execute_wrapper(wrapper):
            hit(url)
        return seen

    hit(urls["tenant"])
    same = statements_of(urls["tenant"])
    client.get("/api/v1/organizations/bench-other/agents")
    switched = statements_of(urls["tenant"])
    for label, statements in (("same tenant as the previous request", same), ("after another tenant", switched)):
        pins = sum(1 for s in statements if s.startswith("SELECT pg_catalog.set_config('search_path'"))
        sets = sum(1 for s in statements if s.startswith("SET search_path"))
        print(
            f"GET agents, {label}: {len(statements)} statement(s) = round trip(s), {pins} carrying the pin, "
            f"{sets} session-level SET search_path"
        )
        for statement in statements:
            print(f"    {statement[:110]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
