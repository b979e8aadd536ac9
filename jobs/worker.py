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

    return sorted(name for name in dramatiq.get_broker().get_declared_queues() if name != PROVISIONING_QUEUE)
