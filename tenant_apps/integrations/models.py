from django.db import models

from public_app.models import TimestampedModel


class Integration(TimestampedModel):
    """A connected outside service (one row per provider). Credentials are encrypted (public_app.crypto)."""

    provider = models.CharField(max_length=32, unique=True)
    credentials_encrypted = models.TextField()
    account_name = models.CharField(max_length=200, blank=True)
    connected_at = models.DateTimeField()
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.provider
