"""Entry point for `dramatiq jobs.worker`: set Django up, then import the actors."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from jobs import billing, emails, integrations, maintenance, provisioning, webhooks  # noqa: E402, F401
from public_app.outbox import PRIORITY_QUEUES  # noqa: E402

PRIORITY_LANE = list(PRIORITY_QUEUES)  # provisioning and emails: a worker of their own (`manage.py serve`)


def queues_besides_priority_lane() -> list[str]:
    """Every queue the actors use except the priority lane's: what the shared worker consumes when a separate one
    provisions and sends email (a burst of new organizations, or one organization's backlog of webhooks, then never
    holds up an invitation email; provisioning's database work is capped at the lane's threads)."""
    import dramatiq

    broker = dramatiq.get_broker()
    ours = {broker.get_actor(name).queue_name for name in broker.get_declared_actors()
            if broker.get_actor(name).fn.__module__.startswith("jobs.")}  # not an actor a test declares  # fmt: skip
    return sorted(ours - set(PRIORITY_LANE))
