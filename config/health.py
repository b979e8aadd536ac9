"""Liveness and readiness probes."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("readiness: database check failed", exc_info=True)
        return False


def _check_broker() -> bool:
    from config.dramatiq import broker_ping

    try:
        broker_ping()
        return True
    except Exception:
        logger.warning("readiness: broker check failed", exc_info=True)
        return False


def _check_cache() -> bool:
    from django.core.cache import cache

    try:
        cache.get("readyz-probe")
        return True
    except Exception:
        logger.warning("readiness: cache check failed", exc_info=True)
        return False


def _outbox() -> dict | None:
    from public_app.outbox import outbox_backlog

    try:
        return outbox_backlog()
    except Exception:
        return None


def readyz(request: HttpRequest) -> JsonResponse:
    """Each dependency on its own. Only the database makes the service unready (503): without the broker, writes
    still succeed and their jobs wait in the outbox (`jobs_waiting`); without the cache, every read falls back to
    the database. Both are reported `down` so that operators see them."""
    checks = {"database": _check_database(), "broker": _check_broker(), "cache": _check_cache()}
    ok = checks["database"]
    body = {
        "status": ("ok" if all(checks.values()) else "degraded") if ok else "unavailable",
        "checks": {k: "ok" if v else "down" for k, v in checks.items()},
    }
    backlog = _outbox() if ok else None
    if backlog is not None:
        body["jobs_waiting"] = backlog["waiting"]
        body["oldest_job_waiting_seconds"] = round(backlog["oldest_seconds"], 1)
    response = JsonResponse(body, status=200 if ok else 503)
    if not ok:
        response["Retry-After"] = "5"
    return response
