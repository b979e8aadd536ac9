"""The organization's audit log, in its own schema. Actors and targets are plain columns (no foreign keys into
`public`): ids are the public uids, labels are copied at write time so entries stay readable after deletions."""

from django.db import models

from public_app import ids


class AuditEntry(models.Model):
    uid = models.CharField(max_length=40, unique=True, default=ids.audit_entry_uid, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    actor_type = models.CharField(max_length=16)  # "user" | "api_key" | "system" | "directory"
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["action", "-id"], name="audit_action_id_idx"),
            models.Index(fields=["actor_id", "-id"], name="audit_actor_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"
