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
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "cache": "ok"},
                        "jobs_waiting": 0, "oldest_job_waiting_seconds": 0}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1/"])
def test_readyz_reports_the_broker_down_but_stays_ready(client, monkeypatch, url):
    """Writes keep working without the broker (their jobs wait in the outbox), so the service stays in rotation."""
    unreachable = dramatiq_config.build_broker(url, "down")
    monkeypatch.setattr(dramatiq_config, "_broker", unreachable)
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert r.json()["checks"] == {"database": "ok", "broker": "down", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_reports_the_cache_down(client, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "broker": "ok", "cache": "down"}


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
