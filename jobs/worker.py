"""Entry point for `dramatiq jobs.worker`: set Django up, then import the actors."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from jobs import billing, emails, integrations, maintenance, provisioning, webhooks  # noqa: E402, F401
