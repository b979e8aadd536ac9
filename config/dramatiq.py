"""The Dramatiq broker, from BROKER_URL (Redis by default, `amqp://` for RabbitMQ), with our middleware.

Must run before any actor is declared: `jobs/__init__.py` calls `setup_broker()` on import.
"""

import dramatiq
from django.conf import settings
from dramatiq.broker import Broker
from dramatiq.middleware import CurrentMessage

_broker: Broker | None = None


def build_broker(url: str, namespace: str) -> Broker:
    from config.metrics import JobMetricsMiddleware
    from jobs.middleware import DjangoConnectionsMiddleware, LogContextMiddleware, OutboxMiddleware

    broker: Broker
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(
            url=url, namespace=namespace, heartbeat_timeout=settings.BROKER_HEARTBEAT_TIMEOUT_SECONDS * 1000,
            # An unreachable Redis fails a send in seconds (the outbox keeps the job) instead of hanging the caller.
            socket_timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
            socket_connect_timeout=settings.DEPENDENCY_TIMEOUT_SECONDS,
        )  # fmt: skip
    elif url.startswith(("postgres://", "postgresql://")):
        # No Redis or RabbitMQ around: queues in PostgreSQL (dramatiq-postgres), durable like the rest of our data.
        from dramatiq_postgres import PostgresBroker

        ensure_postgres_queue_schema(url)
        # Consumers wake on NOTIFY, and otherwise poll: every 1 s by default, which is what a new organization
        # waited for (~1.2 s from POST to active against ~85 ms on Redis) whenever a notify was missed.
        broker = PostgresBroker(url=url, results=False, poll_interval=0.2)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Publisher confirms: `send` returns only once RabbitMQ has the message, so nothing is lost on a crash.
        if "?" not in url:  # fail fast on an unreachable RabbitMQ (the outbox keeps the job), unless the URL says
            t = settings.DEPENDENCY_TIMEOUT_SECONDS
            url += f"?socket_timeout={t}&stack_timeout={t}&blocked_connection_timeout={t}&connection_attempts=1"
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(DjangoConnectionsMiddleware())
    broker.add_middleware(LogContextMiddleware())
    broker.add_middleware(JobMetricsMiddleware())
    broker.add_middleware(OutboxMiddleware())
    return broker


def ensure_postgres_queue_schema(url: str) -> None:
    """Create dramatiq-postgres' tables (schema `dramatiq`) once. Before `manage.py serve` has created the database
    there is nothing to do yet: serve calls this again right after."""
    import psycopg
    from dramatiq_postgres.schema import generate_init_sql, schema_exists

    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError:
        return
    with conn, conn.cursor() as cursor:
        if schema_exists(cursor):
            return
        with conn.transaction():
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('dramatiq-postgres-schema'))")
            if not schema_exists(cursor):
                cursor.execute(generate_init_sql())


def setup_broker() -> Broker:
    global _broker
    if _broker is None:
        _broker = build_broker(settings.BROKER_URL, settings.BROKER_NAMESPACE)
        dramatiq.set_broker(_broker)
    return _broker


def broker_ping() -> None:
    broker = setup_broker()
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()
        return
    pool = getattr(broker, "pool", None)
    if pool is not None:
        with pool.connection(timeout=5) as conn:
            conn.execute("SELECT 1")
        return
    import pika  # type: ignore[import-untyped]

    params = broker.parameters  # type: ignore[attr-defined]
    params = params[0] if isinstance(params, list) else params
    pika.BlockingConnection(params).close()
