import pytest

from config import dramatiq as dramatiq_config


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_when_database_and_broker_answer(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1/"])
def test_readyz_is_503_when_the_broker_is_down(client, monkeypatch, url):
    unreachable = dramatiq_config.build_broker(url, "down")
    monkeypatch.setattr(dramatiq_config, "_broker", unreachable)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "broker": "down"}}


@pytest.mark.django_db
def test_rabbitmq_broker_url_works(monkeypatch):
    """BROKER_URL=amqp://... gives a RabbitMQ broker that really publishes (RabbitMQ runs on this machine)."""
    broker = dramatiq_config.build_broker("amqp://guest:guest@127.0.0.1:5672/", "unused")
    monkeypatch.setattr(dramatiq_config, "_broker", broker)
    dramatiq_config.broker_ping()
    broker.declare_queue("orgs-ci-probe")
    from dramatiq import Message

    broker.enqueue(Message(queue_name="orgs-ci-probe", actor_name="noop", args=(), kwargs={}, options={}))
    assert broker.get_queue_message_counts("orgs-ci-probe")[0] >= 1
    broker.flush("orgs-ci-probe")
    broker.close()
