"""The Dramatiq broker, from BROKER_URL (Redis by default, `amqp://` for RabbitMQ), with our middleware.

Must run before any actor is declared: `jobs/__init__.py` calls `setup_broker()` on import.
"""

import dramatiq
from django.conf import settings
from dramatiq.broker import Broker
from dramatiq.middleware import CurrentMessage

_broker: Broker | None = None


def build_broker(url: str, namespace: str) -> Broker:
    from jobs.middleware import DjangoConnectionsMiddleware, TenantSchemaMiddleware

    broker: Broker
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=namespace)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Publisher confirms: `send` returns only once RabbitMQ has the message, so nothing is lost on a crash.
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(DjangoConnectionsMiddleware())
    broker.add_middleware(TenantSchemaMiddleware())
    return broker


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
    import pika

    params = broker.parameters  # type: ignore[attr-defined]
    params = params[0] if isinstance(params, list) else params
    pika.BlockingConnection(params).close()
