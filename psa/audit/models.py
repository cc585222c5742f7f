"""The audit trail: one row per PSA write, with its origin and the changed fields."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """A create, update or delete of one PSA object, by a user, a sync or the system."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DELETE = "delete", "Deleted"

    class OriginKind(models.TextChoices):
        USER = "user", "User"
        SYNC = "sync", "Sync"
        SYSTEM = "system", "System"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    origin_kind = models.CharField(max_length=10, choices=OriginKind.choices)
    origin_source = models.CharField(max_length=50, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    model = models.CharField(max_length=100, help_text="app_label.model_name")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(
        default=dict, blank=True, help_text="field → [old, new] (create: [null, new])"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["model", "object_id"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.model} #{self.object_id}"
