"""Settings, all read from the environment (see .env.example for every variable).

Defaults work on a development machine with PostgreSQL and Redis on localhost; production sets APP_ENV=production,
which makes SECRET_KEY mandatory.
"""

import json
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_str
from config.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

APP_ENV = env_choice("APP_ENV", "development", ("development", "test", "production"))
# Off unless asked for: API errors are JSON either way, and DEBUG keeps every SQL statement in memory.
DEBUG = env_bool("DEBUG", False)

_DEV_SECRET = "dev-insecure-secret-key-change-me-0123456789abcdef0123456789"  # noqa: S105 - development only
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET if APP_ENV != "production" else None, required=APP_ENV == "production")
if APP_ENV == "production" and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set to a real secret in production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])

SHARED_APPS = [
    # First, so that its management commands replace django-tenants' (public_app.management.refused).
    "public_app",
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    # Listed so the API docs page loads Swagger UI from our own static files (WhiteNoise), not from a public CDN.
    "ninja",
    "jobs",
]
TENANT_APPS = [
    "tenant_apps.agents",
    "tenant_apps.audit",
    "tenant_apps.webhooks",
    "tenant_apps.campaigns",
    "tenant_apps.leads",
    "tenant_apps.phone_numbers",
    "tenant_apps.integrations",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "public_app.Organization"
# django-tenants would otherwise send `SET search_path` before every cursor; our backend (config.db) additionally
# skips the statement when the connection already has the requested path.
TENANT_LIMIT_SET_CALLS = True
# Provisioning builds tenant schemas from a template (public_app.services.provisioning); the schema that holds it.
TENANT_TEMPLATE_SCHEMA = "tenant_template"

MIDDLEWARE = [
    "public_app.middleware.RequestContextMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    "config.middleware.ApiErrorShapeMiddleware",
    "public_app.idempotency.IdempotencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, CSRF, auth and messages serve the Django admin (/admin/); the API authenticates with bearer tokens
    # only, so the admin's middleware skips every other path (config.admin_middleware).
    "config.admin_middleware.AdminSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.admin_middleware.AdminAuthenticationMiddleware",
    "public_app.middleware.AdminLoginGuardMiddleware",
    "config.admin_middleware.AdminMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Parses multipart bodies of PUT/PATCH too (PUT .../logo).
    "ninja.compatibility.files.fix_request_files_middleware",
    # Innermost: the tenant chosen by OrgAuth is dropped as soon as the view returns, before any middleware above
    # writes public rows (idempotency records, sessions) that the tenant's role may not touch.
    "public_app.middleware.PublicSchemaMiddleware",
]
APPEND_SLASH = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orgs")
_db = dj_database_url.parse(DATABASE_URL)
if _db.get("ENGINE") != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL (schema-per-tenant needs PostgreSQL)")
_db["ENGINE"] = "config.db"
# Connections are reused across requests (saves a connect and a `SET search_path` per request) but recycled: a
# backend's catalog cache grows with every tenant schema it touches.
_db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
_db["CONN_HEALTH_CHECKS"] = True
# A server-side cursor outside a transaction is `WITH HOLD`, i.e. session state a transaction pooler loses.
_db["DISABLE_SERVER_SIDE_CURSORS"] = True
# An unreachable database fails a request in seconds (503 database_unavailable), instead of hanging a worker.
_db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT_SECONDS", 5, minimum=1))
_db.setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME", "test_" + str(_db["NAME"]))
DATABASES = {"default": _db}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# redis://... (default), or db:// for Django's database cache (used when no Redis is around; shared by processes).
CACHE_URL = env_str("CACHE_URL", "redis://127.0.0.1:6379/1")
if CACHE_URL.startswith(("redis://", "rediss://")):
    _cache_backend, _cache_location = "django.core.cache.backends.redis.RedisCache", CACHE_URL
elif CACHE_URL == "db://":
    _cache_backend, _cache_location = "django.core.cache.backends.db.DatabaseCache", "orgs_cache"
else:
    raise ImproperlyConfigured("CACHE_URL must be a redis:// URL or db://")
CACHES = {
    "default": {
        "BACKEND": _cache_backend,
        "LOCATION": _cache_location,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "orgs"),
        "TIMEOUT": 300,
        # The cache is on every request's path: an unreachable one must cost milliseconds, not a hung worker
        # (every caller falls back to the database or skips the best-effort write).
        "OPTIONS": (
            {"socket_connect_timeout": 1, "socket_timeout": 1} if _cache_backend.endswith("RedisCache") else {}
        ),
    }
}

BROKER_URL = env_str("BROKER_URL", "redis://127.0.0.1:6379/0")
if not BROKER_URL.startswith(("redis://", "rediss://", "amqp://", "amqps://", "postgres://", "postgresql://")):
    raise ImproperlyConfigured("BROKER_URL must be a redis://, amqp:// or postgres:// URL")
BROKER_NAMESPACE = env_str("BROKER_NAMESPACE", "orgs")
# Fault recovery (README, "Failure behaviour"). Jobs go through the outbox (public_app.outbox): relayed right after
# commit, or by the scheduler's relay loop every OUTBOX_RELAY_INTERVAL_SECONDS while the broker is unreachable.
OUTBOX_RELAY_INTERVAL_SECONDS = env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 1, minimum=1)
# A relayed job not finished this long after it was due (or started) is sent again: its message was lost (a broker
# restarted empty). Jobs are idempotent, so a slow one sent twice costs a no-op.
OUTBOX_REDELIVER_SECONDS = env_int("OUTBOX_REDELIVER_SECONDS", 120, minimum=1)
# After a failed hand-off, requests stop trying the broker themselves for this long (the relay loop carries on).
OUTBOX_BREAKER_SECONDS = env_int("OUTBOX_BREAKER_SECONDS", 5, minimum=0)
# Redis broker: a worker that stopped sending heartbeats this long ago is dead; its unfinished messages come back.
BROKER_HEARTBEAT_TIMEOUT_SECONDS = env_int("BROKER_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=1)
# Connecting to / waiting on the broker, cache and SMTP: an unreachable dependency fails fast instead of hanging.
DEPENDENCY_TIMEOUT_SECONDS = env_int("DEPENDENCY_TIMEOUT_SECONDS", 5, minimum=1)
# A fleet migration gives up waiting for a schema's table locks after this long (then tries that schema again a few
# times, then reports it): requests to the organization never queue behind a blocked ALTER TABLE for longer.
MIGRATION_LOCK_TIMEOUT_MS = env_int("MIGRATION_LOCK_TIMEOUT_MS", 2000, minimum=1)
# And one statement of a rendered migration (a backfill, an index build) is stopped after this long: the schema is
# rolled back and reported, the others go on (0: no limit).
MIGRATION_STATEMENT_TIMEOUT_MS = env_int("MIGRATION_STATEMENT_TIMEOUT_MS", 600_000, minimum=0)
# Where `orgs snapshot` writes when it is given no file.
SNAPSHOT_DIR = Path(env_str("SNAPSHOT_DIR", str(BASE_DIR / ".data" / "snapshots")))
# What a client is told to wait (Retry-After) when the database is unreachable (503 database_unavailable).
DATABASE_RETRY_AFTER_SECONDS = env_int("DATABASE_RETRY_AFTER_SECONDS", 5, minimum=1)

AUTH_USER_MODEL = "public_app.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "name")},
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTH_TOKEN_TTL_DAYS = env_int("AUTH_TOKEN_TTL_DAYS", 30, minimum=1)

# Where the emailed links point: by default the hosted pages of this very service (public_app.pages), on the port
# `bash .ci/serve` listens on; an external front end takes over by setting it.
FRONTEND_URL = env_str("FRONTEND_URL", f"http://localhost:{env_str('PORT', '8000')}").rstrip("/")
# Where Stripe Checkout and the Billing Portal may send people back to (success/cancel/return URLs): hosts only.
# By default the front end's host; a front end on this machine is reached as localhost and as 127.0.0.1 alike.
_FRONTEND_HOST = urlsplit(FRONTEND_URL).hostname or "localhost"
_LOOPBACK_NAMES = ["localhost", "127.0.0.1"]
BILLING_REDIRECT_HOSTS = env_list(
    "BILLING_REDIRECT_HOSTS", _LOOPBACK_NAMES if _FRONTEND_HOST in _LOOPBACK_NAMES else [_FRONTEND_HOST]
)

# Each tenant schema has a NOLOGIN role `<prefix><schema>` (public_app.tenancy); the prefix keeps the roles of two
# databases on one cluster apart. Unset: the database name and "_".
TENANT_ROLE_PREFIX = env_str("TENANT_ROLE_PREFIX") or None

# Schemas built ahead of time from the template; provisioning renames one (~1 ms) instead of building one.
# 0 turns the pool off (e.g. with Citus, until schema renames are verified there).
TENANT_SPARE_SCHEMAS = env_int("TENANT_SPARE_SCHEMAS", 2, minimum=0, maximum=100)

# Provisioning job: retries with exponential backoff, then the organization is marked `failed`.
PROVISION_MAX_RETRIES = env_int("PROVISION_MAX_RETRIES", 5, minimum=0)
PROVISION_MIN_BACKOFF_MS = env_int("PROVISION_MIN_BACKOFF_MS", 2000, minimum=1)


LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
# Collected by `manage.py serve` (collectstatic) and served by WhiteNoise (the Django admin's assets).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / ".data" / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

LOG_FORMAT = env_choice("LOG_FORMAT", "json" if APP_ENV == "production" else "text", ("json", "text"))
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))

# Request-path lookup cache (public_app.cache): how long an entry lives.
LOOKUP_CACHE_TIMEOUT = env_int("LOOKUP_CACHE_TIMEOUT", 300, minimum=1)
# How many callers (token × organization) each process remembers; each is confirmed with the cache on every request.
LOOKUP_MEMO_SIZE = env_int("LOOKUP_MEMO_SIZE", 10000, minimum=0)

# Plans (public_app.plans): the free plan's seat cap, and the Stripe price ids of the paid plans.
FREE_PLAN_MAX_SEATS = env_int("FREE_PLAN_MAX_SEATS", 5, minimum=1)
STRIPE_PRICE_TEAM = env_str("STRIPE_PRICE_TEAM", "price_team")
STRIPE_PRICE_BUSINESS = env_str("STRIPE_PRICE_BUSINESS", "price_business")

# Invitations
INVITATION_DEFAULT_DAYS = 7

# Rate limits (sliding window, counted in the cache). RATELIMIT_ENABLED=false turns them all off (load tests).
RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
RATELIMIT_LOGIN_PER_MINUTE = env_int("RATELIMIT_LOGIN_PER_MINUTE", 10, minimum=1)
RATELIMIT_SIGNUP_PER_HOUR = env_int("RATELIMIT_SIGNUP_PER_HOUR", 20, minimum=1)
RATELIMIT_INVITES_PER_ORG_PER_DAY = env_int("RATELIMIT_INVITES_PER_ORG_PER_DAY", 100, minimum=1)
RATELIMIT_INVITES_PER_EMAIL_PER_DAY = env_int("RATELIMIT_INVITES_PER_EMAIL_PER_DAY", 10, minimum=1)
# Fair share (public_app.fairshare). Every authenticated API request takes a token from its credential's bucket (an
# API key or a user token) and, inside an organization, from the organization's: each refills at the plan's rate
# per minute and holds up to RATELIMIT_BURST_SECONDS of it (a short burst: a full minute's worth let a noisy client
# run far above its rate for half a minute, raising everyone's latency; docs/benchmarks.md). Per-organization
# overrides: `orgs limits`.
_PLANS = ("free", "team", "business")
_ORG_RPM = {"free": 1200, "team": 6000, "business": 30000}
_CREDENTIAL_RPM = {"free": 600, "team": 3000, "business": 12000}
RATELIMIT_ORG_PER_MINUTE = {p: env_int(f"RATELIMIT_ORG_PER_MINUTE_{p.upper()}", _ORG_RPM[p], minimum=1) for p in _PLANS}
RATELIMIT_CREDENTIAL_PER_MINUTE = {
    p: env_int(f"RATELIMIT_CREDENTIAL_PER_MINUTE_{p.upper()}", _CREDENTIAL_RPM[p], minimum=1) for p in _PLANS
}
RATELIMIT_BURST_SECONDS = env_int("RATELIMIT_BURST_SECONDS", 10, minimum=1, maximum=3600)
# Query budgets: statement_timeout of every transaction of an organization's tenant work (0: none), per plan;
# jobs get their own (longer) budget.
QUERY_BUDGET_MS = env_int("QUERY_BUDGET_MS", 5000, minimum=0)
QUERY_BUDGET_MS_BY_PLAN = {p: env_int(f"QUERY_BUDGET_MS_{p.upper()}", QUERY_BUDGET_MS, minimum=0) for p in _PLANS}
JOB_QUERY_BUDGET_MS = env_int("JOB_QUERY_BUDGET_MS", 120_000, minimum=0)
# Fair job queues (public_app.outbox): at most this many jobs per organization of the shared lane (webhooks,
# integrations, billing) are at the broker at once; the rest wait in the outbox, released oldest first as those
# finish, so one organization's backlog is never ahead of another's new job. 0: no cap.
JOB_ORG_CONCURRENCY = env_int("JOB_ORG_CONCURRENCY", 4, minimum=0)
# Per-organization usage in /metrics: the top N organizations by requests get their own label, the rest "other".
METRICS_TOP_ORGANIZATIONS = env_int("METRICS_TOP_ORGANIZATIONS", 20, minimum=0, maximum=1000)
# Verified domains (public_app.services.domains): the DNS server asked for TXT records (host:port; empty: the
# system's resolvers), how long a lookup may take, and verification attempts per domain per hour.
DNS_RESOLVER = env_str("DNS_RESOLVER", "")
DNS_TIMEOUT_SECONDS = env_int("DNS_TIMEOUT_SECONDS", 5, minimum=1, maximum=30)
# Join requests (public_app.services.join_requests) a user may make, and an organization may receive, per day.
RATELIMIT_JOIN_REQUESTS_PER_USER_PER_DAY = env_int("RATELIMIT_JOIN_REQUESTS_PER_USER_PER_DAY", 10, minimum=1)
RATELIMIT_JOIN_REQUESTS_PER_ORG_PER_DAY = env_int("RATELIMIT_JOIN_REQUESTS_PER_ORG_PER_DAY", 100, minimum=1)
# Custom roles an organization may define (public_app.services.roles).
CUSTOM_ROLES_MAX = env_int("CUSTOM_ROLES_MAX", 100, minimum=1, maximum=1000)
RATELIMIT_DOMAIN_VERIFICATIONS_PER_HOUR = env_int("RATELIMIT_DOMAIN_VERIFICATIONS_PER_HOUR", 20, minimum=1)
# Failed guesses (public_app.bruteforce): free failures per account, per client IP and per pair, then a wait that
# doubles with each failure, up to the maximum; counts fade after the window.
BRUTEFORCE_FREE_PER_ACCOUNT = env_int("BRUTEFORCE_FREE_PER_ACCOUNT", 10, minimum=1)
BRUTEFORCE_FREE_PER_IP = env_int("BRUTEFORCE_FREE_PER_IP", 20, minimum=1)
BRUTEFORCE_FREE_PER_PAIR = env_int("BRUTEFORCE_FREE_PER_PAIR", 5, minimum=1)
BRUTEFORCE_MAX_LOCK_SECONDS = env_int("BRUTEFORCE_MAX_LOCK_SECONDS", 900, minimum=1)
BRUTEFORCE_WINDOW_SECONDS = env_int("BRUTEFORCE_WINDOW_SECONDS", 3600, minimum=60)
RATELIMIT_VERIFICATION_EMAILS_PER_HOUR = env_int("RATELIMIT_VERIFICATION_EMAILS_PER_HOUR", 5, minimum=1)
# Email verification links (public_app.services.verification) work once, for this long.
EMAIL_VERIFICATION_TTL_HOURS = env_int("EMAIL_VERIFICATION_TTL_HOURS", 72, minimum=1)
# Take the client IP from X-Forwarded-For (set only behind a proxy that overwrites the header).
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)

# Email (Django's email framework, as MAILERS; the variables keep their classic names). Development prints messages
# to the console; production (and EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend) sends through EMAIL_HOST.
EMAIL_BACKEND_PATH = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if APP_ENV == "production"
    else "django.core.mail.backends.console.EmailBackend",
)
_mail_options: dict[str, object] = {}
if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend"):
    _mail_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25, minimum=1, maximum=65535),
        "username": env_str("EMAIL_HOST_USER", ""),
        "password": env_str("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "use_ssl": env_bool("EMAIL_USE_SSL", False),
        "timeout": env_int("EMAIL_TIMEOUT", 10, minimum=1),
    }
elif EMAIL_BACKEND_PATH.endswith("filebased.EmailBackend"):
    _mail_options = {"file_path": env_str("EMAIL_FILE_PATH", str(BASE_DIR / ".data" / "mail"))}
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND_PATH, "OPTIONS": _mail_options}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Organizations <no-reply@localhost>")
EMAIL_MESSAGE_ID_DOMAIN = env_str("EMAIL_MESSAGE_ID_DOMAIN", "orgs.localhost")
# An email is claimed before it is sent; a sender that died mid-send leaves a claim that expires after this long, and
# only then may the email go out again (public_app.mail). Longer than any SMTP conversation (EMAIL_TIMEOUT).
EMAIL_CLAIM_SECONDS = env_int("EMAIL_CLAIM_SECONDS", 300, minimum=1)

# Encryption at rest (public_app.crypto): comma-separated Fernet keys, the first one encrypts. Required in production.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if APP_ENV == "production" and not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is required in production")

# Webhooks: seconds to wait before each attempt (first = immediately); private/loopback targets only if allowed.
try:
    WEBHOOK_RETRY_SCHEDULE = [
        float(s)
        for s in env_list("WEBHOOK_RETRY_SCHEDULE", ["0", "5", "300", "1800", "7200", "18000", "36000", "36000"])
    ]
except ValueError:
    raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds") from None
if not WEBHOOK_RETRY_SCHEDULE or any(s < 0 for s in WEBHOOK_RETRY_SCHEDULE):
    raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE must list at least one non-negative delay")
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
WEBHOOK_REQUIRE_HTTPS = env_bool("WEBHOOK_REQUIRE_HTTPS", APP_ENV == "production")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
# An endpoint failing for this long without a single success is disabled and the owners are emailed.
WEBHOOK_DISABLE_AFTER_SECONDS = env_int("WEBHOOK_DISABLE_AFTER_SECONDS", 5 * 24 * 3600, minimum=60)

# Bulk lead import (POST .../leads/import): rows per request; the body may be up to LARGE_UPLOAD_MAX_BYTES.
LEADS_IMPORT_MAX_ROWS = env_int("LEADS_IMPORT_MAX_ROWS", 10000, minimum=1)
API_BODY_MAX_BYTES = 1024 * 1024
LARGE_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = LARGE_UPLOAD_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = LARGE_UPLOAD_MAX_BYTES

# Leadsforce integration (docs/leadsforce.md): off while LEADSFORCE_API_URL is unset.
LEADSFORCE_API_URL = env_str("LEADSFORCE_API_URL", "")
LEADSFORCE_TIMEOUT_SECONDS = env_int("LEADSFORCE_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)

# Organization lifecycle.
ORG_DELETION_GRACE_DAYS = env_int("ORG_DELETION_GRACE_DAYS", 7, minimum=0)
ORG_SLUG_REDIRECT_DAYS = env_int("ORG_SLUG_REDIRECT_DAYS", 90, minimum=0)
# Organizations in `provisioning` for longer than this are re-enqueued by the scheduler.
PROVISIONING_STUCK_SECONDS = env_int("PROVISIONING_STUCK_SECONDS", 300, minimum=10)
# Work whose job is undone in the database this long (an invitation email not sent, a Stripe event not processed,
# seats not synced, a webhook delivery overdue) gets its job again, whatever happened to the first one.
REDRIVE_AFTER_SECONDS = env_int("REDRIVE_AFTER_SECONDS", 120, minimum=1)
WEBHOOK_REDRIVE_INTERVAL_SECONDS = env_int("WEBHOOK_REDRIVE_INTERVAL_SECONDS", 600, minimum=1)
SCHEDULER_INTERVAL_SECONDS = env_int("SCHEDULER_INTERVAL_SECONDS", 60, minimum=1)
# The leader's lease (public_app.leases): renewed every third of it; a stopped or stuck leader is replaced after it.
SCHEDULER_LEASE_SECONDS = env_int("SCHEDULER_LEASE_SECONDS", 15, minimum=3)

# Uploaded files (logos) go through Django's storage API: local directory by default, any backend by setting
# STORAGE_BACKEND (e.g. storages.backends.s3.S3Storage) with its options in STORAGE_OPTIONS_JSON.
MEDIA_ROOT = env_str("MEDIA_ROOT", str(BASE_DIR / ".data" / "media"))
MEDIA_URL = env_str("MEDIA_URL", "/media/")
STORAGES = {
    "default": {
        "BACKEND": env_str("STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(env_str("STORAGE_OPTIONS_JSON", "{}")),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGO_MAX_BYTES = 1024 * 1024
LOGO_MAX_SIDE = 4096

# Stripe (public_app.clients.stripe_api). Billing is off while STRIPE_SECRET_KEY is unset; STRIPE_API_BASE points
# the client elsewhere (tests run a Stripe-compatible server on 127.0.0.1).
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
STRIPE_PRORATION_BEHAVIOR = env_choice(
    "STRIPE_PRORATION_BEHAVIOR", "create_prorations", ("create_prorations", "none", "always_invoice")
)
# Membership changes within this window are coalesced into one seat sync.
BILLING_SEAT_SYNC_DELAY_MS = env_int("BILLING_SEAT_SYNC_DELAY_MS", 1000, minimum=0)

# /metrics (Prometheus): with METRICS_TOKEN set, `Authorization: Bearer <token>` is required; otherwise only clients
# in METRICS_ALLOW_NETWORKS may scrape (404 for everyone else).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# No default network: behind a reverse proxy on the same host every client would be 127.0.0.1. Development and the
# tests name loopback explicitly (.env.example, settings_test).
METRICS_ALLOW_NETWORKS = env_list("METRICS_ALLOW_NETWORKS", [])

# Production hardening (manage.py check --deploy is clean with APP_ENV=production and a real SECRET_KEY).
_prod = APP_ENV == "production"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _prod)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _prod else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _prod)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _prod)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _prod)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A refused form gets a page that says what to do (the hosted pages' error page), not a bare 403.
CSRF_FAILURE_VIEW = "public_app.pages.common.csrf_failure"
X_FRAME_OPTIONS = "DENY"
