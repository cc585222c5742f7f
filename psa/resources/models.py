"""The organisation running the PSA and its resources (people who get scheduled)."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from psa.resources.timezones import validate_time_zone


class Organisation(models.Model):
    """The MSP that runs this PSA installation (one row)."""

    name = models.CharField(max_length=200, verbose_name=_("name"))
    default_time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        verbose_name=_("default time zone"),
    )

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self) -> str:
        return self.name


class ResourceQuerySet(models.QuerySet["Resource"]):
    def active(self) -> ResourceQuerySet:
        return self.filter(active=True)


class Resource(models.Model):
    """A PSA user who can be scheduled: technician, dispatcher or administrator.

    ``time_zone`` is the zone the resource's calendar is shown in and that items exported to
    their mailbox are written in.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="resource",
        verbose_name=_("user"),
    )
    first_name = models.CharField(max_length=100, verbose_name=_("first name"))
    last_name = models.CharField(max_length=100, verbose_name=_("last name"))
    email = models.EmailField(verbose_name=_("email"))
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], verbose_name=_("time zone")
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))
    # Blank: never chosen; pages then follow the browser, and emails and the text written into
    # Exchange items follow PSA_LANGUAGE (psa/i18n/__init__.py, docs/i18n.md).
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        default="",
        db_default="",
        choices=settings.LANGUAGES,
    )

    objects = ResourceQuerySet.as_manager()

    class Meta:
        verbose_name = _("resource")
        verbose_name_plural = _("resources")
        ordering = ["last_name", "first_name", "id"]
        permissions = [
            ("view_all_calendars", "Can see and edit every resource's calendar"),
        ]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="resource_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)
