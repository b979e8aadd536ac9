"""Dramatiq actors. Importing this package configures the broker (before any actor is declared)."""

from config.dramatiq import setup_broker

setup_broker()
