"""Prometheus metrics: HTTP requests by route and status, job runs by actor and outcome, organizations by status.

With PROMETHEUS_MULTIPROC_DIR set (manage.py serve sets it), every process (gunicorn workers, Dramatiq workers)
writes its samples there and `/metrics` in any web worker serves the sum of all of them.
"""

import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from dramatiq import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request duration", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
QUERY_TIMEOUTS = Counter("query_timeouts_total", "Requests stopped by their organization's query budget (503)")
JOBS = Counter("dramatiq_jobs_total", "Job runs by outcome", ["actor", "outcome"])
JOB_RETRIES = Counter("dramatiq_job_retries_total", "Job runs that were retries", ["actor"])
JOB_DURATION = Histogram(
    "dramatiq_job_duration_seconds", "Job run duration", ["actor"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)  # fmt: skip


class OrganizationsByStatus(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count

        from public_app.models import Organization

        family = GaugeMetricFamily("organizations", "Organizations by status", labels=["status"])
        for row in Organization.objects.values("status").annotate(n=Count("id")).order_by():
            family.add_metric([row["status"]], row["n"])
        yield family


class OrganizationUsage(Collector):
    """Fair share seen from ops: the busiest organizations (METRICS_TOP_ORGANIZATIONS) by name, the rest as
    "other", over the last five minutes (public_app.fairshare), and their jobs waiting in the outbox."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from public_app.fairshare import USAGE_WINDOW_MINUTES, usage_report

        window = f"the last {USAGE_WINDOW_MINUTES} minutes"
        families = {
            "requests": GaugeMetricFamily("organization_requests_recent", f"API requests let through in {window}",
                                          labels=["organization"]),
            "rate_limited": GaugeMetricFamily("organization_rate_limited_recent", f"Requests refused (429) in {window}",
                                              labels=["organization"]),
            "query_timeouts": GaugeMetricFamily("organization_query_timeouts_recent",
                                                f"Requests stopped by the query budget (503) in {window}",
                                                labels=["organization"]),
            "jobs_waiting": GaugeMetricFamily("organization_jobs_waiting", "Jobs not finished yet (outbox)",
                                              labels=["organization"]),
            "jobs_held": GaugeMetricFamily("organization_jobs_held",
                                           "Jobs held back by fair share until earlier ones finish",
                                           labels=["organization"]),
        }  # fmt: skip
        for row in usage_report(settings.METRICS_TOP_ORGANIZATIONS):
            for key, family in families.items():
                family.add_metric([row["organization"]], row[key])
        yield from families.values()


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return registry


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        import hmac

        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOW_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(status=404)
    registry = _registry()
    organizations = CollectorRegistry()
    organizations.register(OrganizationsByStatus())
    organizations.register(OrganizationUsage())
    body = generate_latest(registry) + generate_latest(organizations)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        route = match.route if match is not None else "unmatched"
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


class JobMetricsMiddleware(Middleware):
    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: Any, message: Any) -> None:
        self._started[message.message_id] = time.perf_counter()
        if message.options.get("retries"):
            JOB_RETRIES.labels(message.actor_name).inc()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        started = self._started.pop(message.message_id, None)
        if started is not None:
            JOB_DURATION.labels(message.actor_name).observe(time.perf_counter() - started)
        JOBS.labels(message.actor_name, "failed" if exception else "succeeded").inc()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._started.pop(message.message_id, None)
        JOBS.labels(message.actor_name, "skipped").inc()
