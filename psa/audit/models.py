"""The audit trail: one row per PSA write, with its origin and the changed fields."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditEntry(models.Model):
    """A create, update or delete of one PSA object, by a user, a sync or the system."""

    class Action(models.TextChoices):
        CREATE = "create", _("Created")
        UPDATE = "update", _("Updated")
        DELETE = "delete", _("Deleted")

    class OriginKind(models.TextChoices):
        USER = "user", _("User")
        SYNC = "sync", _("Sync")
        SYSTEM = "system", _("System")

    at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("at"))
    action = models.CharField(max_length=10, choices=Action.choices, verbose_name=_("action"))
    origin_kind = models.CharField(
        max_length=10, choices=OriginKind.choices, verbose_name=_("origin kind")
    )
    origin_source = models.CharField(max_length=50, blank=True, verbose_name=_("origin source"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("user"),
    )
    model = models.CharField(
        max_length=100, help_text=_("app_label.model_name"), verbose_name=_("model")
    )
    object_id = models.CharField(max_length=64, verbose_name=_("object id"))
    object_repr = models.CharField(max_length=200, verbose_name=_("object repr"))
    changes = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("field → [old, new] (create: [null, new])"),
        verbose_name=_("changes"),
    )

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["model", "object_id"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.model} #{self.object_id}"
