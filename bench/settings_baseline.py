"""The baseline for bench/pooler.py: the service with django-tenants' own backend, which switches schemas with a
session-level `SET search_path` (what this service did before its tenant context became transaction-scoped).
Unsafe behind a transaction pooler; only ever run by the benchmark."""

from config.settings import *  # noqa: F403
from config.settings import DATABASES

DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
