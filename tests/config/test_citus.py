"""The service unchanged on a real Citus cluster (13.2.2, schema-based sharding: a coordinator and two workers
started from `../shared/citus/cluster.sh`), run by its own run command against the coordinator with the default
settings: provisioning by spare and by replay, every tenant table distributed, organizations on both workers, the
API and its isolation across workers, `orgs move` under concurrent reads and writes, export/import, and a new tenant
migration rolled over the cluster.

The tests share one cluster and one service (module fixtures) and run in order, each building on the last."""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.pooler import ROOT, wait_until
from tests.service import Service

DATABASE = f"orgs_citus_{os.getpid()}"
ORGS = [f"cz-{i}" for i in range(6)]


def cluster_script() -> Path:
    """`../shared/citus/cluster.sh` beside the checkout (or CITUS_CLUSTER); a missing one fails the module."""
    for candidate in (os.environ.get("CITUS_CLUSTER"), ROOT.parent / "shared" / "citus" / "cluster.sh",
                      "/work/shared/citus/cluster.sh"):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AssertionError("no Citus cluster script: set CITUS_CLUSTER to ../shared/citus/cluster.sh")


def three_free_ports() -> int:
    for base in range(random.randrange(20000, 30000, 10), 40000, 10):
        ports_free = True
        for port in range(base, base + 3):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ports_free = False
                    break
        if ports_free:
            return base
    raise AssertionError("no three free ports")


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    script = cluster_script()
    data = tempfile.mkdtemp(prefix="orgs-citus-")
    base = three_free_ports()
    try:
        started = subprocess.run(["bash", str(script), "start", data, str(base), DATABASE], capture_output=True,
                                 text=True, timeout=900)  # fmt: skip
        assert started.returncode == 0, started.stderr[-2000:]
        url = started.stdout.strip().splitlines()[-1]
        yield {"url": url, "workers": {f"127.0.0.1:{base + 1}", f"127.0.0.1:{base + 2}"}}
    finally:
        subprocess.run(["bash", str(script), "stop", data], capture_output=True, timeout=120)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def service(cluster: dict[str, Any], tmp_path_factory: Any) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("citus-service")
    # The defaults (TENANT_SPARE_SCHEMAS=2 included); only the dependencies and the log level are this test's.
    service = Service(tmp, cluster["url"], "redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/10",
                      TENANT_SPARE_SCHEMAS="2", LOG_LEVEL="INFO")  # fmt: skip
    service.start()
    try:
        yield service
    finally:
        service.stop()


def sql(url: str, query: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def orgs(service: Service, *args: str, cwd: Path = ROOT, expect: int = 0) -> str:
    env = {**service.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "manage.py", "orgs", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == expect, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def placement(url: str, schema: str) -> str:
    rows = sql(url, "SELECT DISTINCT nodename || ':' || nodeport FROM citus_shards WHERE table_name::text LIKE %s",
               [f"{schema}.%"])  # fmt: skip
    assert len(rows) == 1, rows
    return rows[0][0]


def schema_of(service: Service, slug: str) -> str:
    return sql(service.database_url, "SELECT schema_name FROM public_app_organization WHERE slug = %s", [slug])[0][0]


@pytest.fixture(scope="module")
def fleet(service: Service) -> dict[str, Any]:
    owner = service.sign_up("citus-owner@example.com")
    for slug in ORGS:
        service.create_organization(slug)
    wait_until(lambda: service.statuses_of(ORGS)["active"] == len(ORGS), 120, "organizations active")
    return {"owner": owner, "schemas": {slug: schema_of(service, slug) for slug in ORGS}}


def test_organizations_are_provisioned_by_spare_and_by_replay_into_distributed_schemas(cluster, service, fleet):
    url = cluster["url"]
    log = service.processes.log("serve")
    assert "(by spare)" in log and "built (by template)" in log, log[-3000:]
    assert "(by migrations)" not in log and "replaying the template" not in log
    for slug, schema in fleet["schemas"].items():
        tables = {row[0] for row in sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])}
        distributed = sql(url, "SELECT table_name::text, citus_table_type FROM citus_tables WHERE table_name::text "
                               "LIKE %s", [f"{schema}.%"])  # fmt: skip
        assert len(tables) == 10, (slug, tables)
        assert {t.split(".", 1)[1] for t, kind in distributed if kind == "schema"} == tables, slug
    nodes = Counter(placement(url, schema) for schema in fleet["schemas"].values())
    assert set(nodes) == cluster["workers"], nodes  # spread over both workers
    assert "no drift" in orgs(service, "check")
    listed = {row["slug"]: row for row in json.loads(orgs(service, "list", "--json"))}
    for slug, schema in fleet["schemas"].items():
        assert listed[slug]["node"] == placement(url, schema)
        assert listed[slug]["schema_bytes"] > 100_000  # the shards' size, not the coordinator's empty shell


def two_on_different_workers(cluster: dict[str, Any], fleet: dict[str, Any]) -> tuple[str, str]:
    by_node: dict[str, str] = {}
    for slug, schema in fleet["schemas"].items():
        by_node.setdefault(placement(cluster["url"], schema), slug)
    a, b = sorted(by_node.values())
    return a, b


def test_the_api_answers_for_organizations_on_both_workers_and_never_crosses_them(cluster, service, fleet):
    a, b = two_on_different_workers(cluster, fleet)
    stranger = service.sign_up("citus-stranger@example.com")
    service.token = fleet["owner"]
    statuses: Counter[int] = Counter()
    leaks: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=f"{service.base}/api/v1/organizations", timeout=30,
                          headers={"Authorization": f"Bearer {fleet['owner']}"}) as http:  # fmt: skip
            for n in range(60):
                slug = rng.choice((a, b))
                if rng.random() < 0.4:
                    response = http.post(f"/{slug}/agents", json={"name": f"{slug}:agent {seed}-{n}"})
                else:
                    response = http.get(f"/{slug}/agents?limit=50")
                    names = [item["name"] for item in response.json().get("items", [])]
                    leaks.extend(name for name in names if not name.startswith(f"{slug}:"))
                statuses[response.status_code] += 1

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert leaks == []
    assert set(statuses) <= {200, 201}, statuses
    for slug in (a, b):  # read directly from each schema: every row is the organization's own
        rows = sql(cluster["url"], f'SELECT name FROM "{fleet["schemas"][slug]}".agents_agent')
        assert rows and all(name.startswith(f"{slug}:") for (name,) in rows)
    # another user's token reaches neither organization
    for slug in (a, b):
        refused = httpx.get(f"{service.base}/api/v1/organizations/{slug}/agents",
                            headers={"Authorization": f"Bearer {stranger}"})  # fmt: skip
        assert refused.status_code in (403, 404) and refused.json()["code"]


def test_an_organization_moves_to_the_other_worker_while_its_api_is_used(cluster, service, fleet):
    """Traffic from clients that follow the contract (a 503 is retried after its `Retry-After`, with the same
    `Idempotency-Key` for a create) never fails while the organization moves: usually no 503 at all; when the move's
    final catch-up holds writes past the query budget (a loaded machine), the few 503s carry `Retry-After` and the
    retry succeeds, and every acknowledged write is stored exactly once."""
    a, _ = two_on_different_workers(cluster, fleet)
    schema = fleet["schemas"][a]
    source = placement(cluster["url"], schema)
    (target,) = cluster["workers"] - {source}
    acknowledged: list[str] = []
    statuses: Counter[int] = Counter()  # every answer
    outcomes: Counter[int] = Counter()  # each operation's final answer
    unadvised: list[int] = []  # a 503 without Retry-After
    stop = threading.Event()

    def call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(30):
            response = http.request(method, path, **kwargs)
            statuses[response.status_code] += 1
            if response.status_code != 503:
                break
            if "Retry-After" not in response.headers:
                unadvised.append(503)
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 1.0))
        outcomes[response.status_code] += 1
        return response

    def traffic(seed: int) -> None:
        with httpx.Client(base_url=f"{service.base}/api/v1/organizations/{a}", timeout=30,
                          headers={"Authorization": f"Bearer {fleet['owner']}"}) as http:  # fmt: skip
            n = 0
            while not stop.is_set():
                n += 1
                created = call(http, "POST", "/agents", json={"name": f"{a}:moving {seed}-{n}"},
                               headers={"Idempotency-Key": f"move-{seed}-{n}"})  # fmt: skip
                if created.status_code == 201:
                    acknowledged.append(created.json()["id"])
                call(http, "GET", "/agents?limit=20")

    threads = [threading.Thread(target=traffic, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    try:
        output = orgs(service, "move", a, "--to", target)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(output, dict(statuses))
    assert f"moved {a} from {source} to {target}" in output
    assert placement(cluster["url"], schema) == target
    assert set(outcomes) <= {200, 201}, outcomes  # 0 failed operations while it moved
    assert set(statuses) <= {200, 201, 503} and unadvised == [], statuses  # degraded at worst, and said when to retry
    stored_names = [str(row[0]) for row in sql(cluster["url"], f"SELECT name FROM \"{schema}\".agents_agent "
                                                                f"WHERE name LIKE '{a}:moving %'")]  # fmt: skip
    assert len(stored_names) == len(set(stored_names)) == len(acknowledged)  # each write once, a retry never twice
    assert len(acknowledged) > 20
    stored = {str(row[0]) for row in sql(cluster["url"], f'SELECT uid FROM "{schema}".agents_agent')}
    assert set(acknowledged) <= stored  # no acknowledged write lost
    assert json.loads(orgs(service, "move", a, "--to", target, "--json"))["moved"] is False
    orgs(service, "move", a, "--to", "127.0.0.1:1", expect=1)


def test_export_then_import_on_the_cluster(cluster, service, fleet, tmp_path):
    a, _ = two_on_different_workers(cluster, fleet)
    archive = tmp_path / "org.tar.gz"
    orgs(service, "export", a, str(archive))
    orgs(service, "import", str(archive), "--slug", f"{a}-copy")
    copy_schema = schema_of(service, f"{a}-copy")
    assert sql(cluster["url"], "SELECT count(*) FROM citus_tables WHERE table_name::text LIKE %s",
               [f"{copy_schema}.%"])[0][0] == 10  # fmt: skip
    headers = {"Authorization": f"Bearer {fleet['owner']}"}

    def names(slug: str) -> list[str]:
        listed = httpx.get(f"{service.base}/api/v1/organizations/{slug}/agents?limit=100", headers=headers)
        return sorted(item["name"] for item in listed.json()["items"])

    assert names(f"{a}-copy") == names(a) and names(a)
    created = httpx.post(f"{service.base}/api/v1/organizations/{a}-copy/agents", json={"name": f"{a}:new"},
                         headers=headers)  # fmt: skip
    assert created.status_code == 201, created.text  # its sequences continue after the imported rows
    assert "no drift" in orgs(service, "check")


def test_a_new_tenant_migration_rolls_across_the_cluster(cluster, service, fleet, tmp_path):
    """The next release adds a column: `orgs migrate` (from that release's code) alters every organization's table
    on whichever worker holds it."""
    release = tmp_path / "release"
    shutil.copytree(ROOT, release, ignore=shutil.ignore_patterns(".git", ".venv", ".data", "__pycache__"))
    migrations = release / "tenant_apps" / "agents" / "migrations"
    latest = sorted(p.stem for p in migrations.glob("0*.py"))[-1]
    (migrations / "9999_citus_probe.py").write_text(
        "from django.db import migrations, models\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = [('agents', '{latest}')]\n"
        "    operations = [migrations.AddField('agent', 'citus_probe', models.TextField(null=True))]\n"
    )
    result = json.loads(orgs(service, "migrate", "--jobs", "2", "--json", cwd=release))
    assert result["failed"] == {} and result["migrated"] >= len(ORGS), result
    for slug in [*ORGS, f"{two_on_different_workers(cluster, fleet)[0]}-copy"]:
        schema = schema_of(service, slug)
        # the query is routed to the worker holding the schema: the column exists there
        assert sql(cluster["url"], f'SELECT count(citus_probe) FROM "{schema}".agents_agent') == [(0,)]
    assert "no drift" in orgs(service, "check", cwd=release)
