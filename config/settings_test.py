"""Test settings: the real PostgreSQL, Redis and broker, on their own Redis databases and broker namespace."""

import os

os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("BROKER_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("BROKER_NAMESPACE", "orgs-test")
# Emailed links in tests point at a fixed address (the hosted-pages browser tests point them at their live server).
os.environ.setdefault("FRONTEND_URL", "http://localhost:3000")
os.environ.setdefault("PROVISION_MAX_RETRIES", "2")
# The spare-schema pool has its own tests; elsewhere every organization gets a freshly replayed schema.
os.environ.setdefault("TENANT_SPARE_SCHEMAS", "0")
# Worker threads close their connection after each message, so the test database can be dropped at the end.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")
os.environ.setdefault("PROVISION_MIN_BACKOFF_MS", "50")
os.environ.setdefault("METRICS_ALLOW_NETWORKS", "127.0.0.1/32")
# Fair-share buckets sized so that no test of something else meets them (tests/public_app/test_fairshare.py sets
# its own).
os.environ.setdefault("RATELIMIT_ORG_PER_MINUTE_FREE", "1000000")
os.environ.setdefault("RATELIMIT_ORG_PER_MINUTE_TEAM", "1000000")
os.environ.setdefault("RATELIMIT_ORG_PER_MINUTE_BUSINESS", "1000000")
os.environ.setdefault("RATELIMIT_CREDENTIAL_PER_MINUTE_FREE", "1000000")
os.environ.setdefault("RATELIMIT_CREDENTIAL_PER_MINUTE_TEAM", "1000000")
os.environ.setdefault("RATELIMIT_CREDENTIAL_PER_MINUTE_BUSINESS", "1000000")
# DNS never leaves the machine in tests: nothing answers there (tests that verify a domain run their own server).
os.environ.setdefault("DNS_RESOLVER", "127.0.0.1:9")
os.environ.setdefault("DNS_TIMEOUT_SECONDS", "1")
os.environ.setdefault("BILLING_REDIRECT_HOSTS", "localhost,app.example,a.example")

from config.settings import *  # noqa: F403

# Argon2 stays the hasher (it is what production runs), with test-sized costs.
PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]

# Every error response the tests receive is checked against the OpenAPI document (tests/contract.py).
MIDDLEWARE = ["tests.contract.ContractCheckMiddleware", *MIDDLEWARE]  # noqa: F405
