"""Where an authenticated request's time goes, in process (issue 17, item 3): the cost of each middleware, of the
JSON rendering, and a profile of the whole request, for the bare view, `/me`, the agents list of 20 and of 200.

    .venv/bin/python bench/request_profile.py [REQUESTS] [--profile]

Each middleware is timed by probes put between every two middlewares (settings.MIDDLEWARE is rebuilt with a probe
before each entry and one innermost): a middleware's own cost is the time inside its probe minus the time inside
the next one. Requests go through Django's test client with production settings, warm caches, one organization
with 200 agents of 200-character prompts, and a second organization present.
"""

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from common import bench_organizations, fresh_database, machine

_spent: dict[int, float] = defaultdict(float)


def probe_factory(index: int) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    def middleware(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def probe(request: Any) -> Any:
            started = time.perf_counter()
            try:
                return get_response(request)
            finally:
                _spent[index] += time.perf_counter() - started

        return probe

    return middleware


def main(requests: int, profile: bool) -> None:
    from django.conf import settings

    names = list(settings.MIDDLEWARE)
    probes = []
    for i, name in enumerate(names):
        globals()[f"probe_{i}"] = probe_factory(i)
        probes += [f"__main__.probe_{i}", name]
    globals()[f"probe_{len(names)}"] = probe_factory(len(names))
    settings.MIDDLEWARE = [*probes, f"__main__.probe_{len(names)}"]
    fresh_database()
    from django.test import Client

    _, _, token = bench_organizations(agents=200)
    client = Client(headers={"Authorization": f"Bearer {token}"})
    urls = {
        "bare view (/healthz)": "/healthz",
        "GET /me": "/api/v1/me",
        "agents, limit=20": "/api/v1/organizations/bench/agents?limit=20",
        "agents, limit=200": "/api/v1/organizations/bench/agents?limit=200",
    }
    print(f"machine: {machine()}; {requests} requests each, in process")
    for label, url in urls.items():
        for _ in range(50):
            assert client.get(url).status_code == 200
        _spent.clear()
        started = time.perf_counter()
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
        for _ in range(requests):
            client.get(url)
        total = time.perf_counter() - started
        if profile:
            profiler.disable()
            print(f"\n== {label}: profile (cumulative) ==")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        print(f"\n{label}: {total / requests * 1000:.3f} ms per request")
        for i, name in enumerate(names):
            own = (_spent[i] - _spent[i + 1]) / requests * 1000
            print(f"    {own:7.3f} ms  {name}")
        view = _spent[len(names)] / requests * 1000
        print(f"    {view:7.3f} ms  the view (URL resolution, ninja, auth, query, JSON)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 500, "--profile" in sys.argv)
