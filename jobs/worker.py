"""Entry point for `dramatiq jobs.worker`: set Django up, then import the actors."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from jobs import billing, emails, integrations, maintenance, provisioning, webhooks  # noqa: E402, F401

PROVISIONING_QUEUE = "provisioning"


def queues_besides_provisioning() -> list[str]:
    """Every queue the actors use except provisioning's: what a worker consumes when a separate one provisions
    (a burst of new organizations then never holds up invitations, webhooks or billing, and its database work is
    capped at that worker's threads)."""
    import dramatiq

    broker = dramatiq.get_broker()
    ours = {broker.get_actor(name).queue_name for name in broker.get_declared_actors()
            if broker.get_actor(name).fn.__module__.startswith("jobs.")}  # not an actor a test declares  # fmt: skip
    return sorted(ours - {PROVISIONING_QUEUE})
