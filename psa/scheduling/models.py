"""Calendar items of the PSA. All datetimes are aware and stored in UTC.

Database constraints guard the invariants a sync relies on (an item ends after it starts, a
to-do's completion is consistent), so no writer — UI, admin, sync or a stray script — can store
an item Exchange would reject.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext

from psa.crm.models import Account, Contact
from psa.resources.models import Resource


class Ticket(models.Model):
    """A minimal ticket or project task that service calls refer to."""

    class Kind(models.TextChoices):
        TICKET = "ticket", _("Ticket")
        TASK = "task", _("Task")

    class Status(models.TextChoices):
        NEW = "new", _("New")
        IN_PROGRESS = "in_progress", _("In progress")
        WAITING = "waiting", _("Waiting customer")
        COMPLETE = "complete", _("Complete")

    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.TICKET, verbose_name=_("kind")
    )
    number = models.CharField(max_length=30, unique=True, verbose_name=_("number"))
    title = models.CharField(max_length=200, verbose_name=_("title"))
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.NEW, verbose_name=_("status")
    )
    account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tickets",
        verbose_name=_("account"),
    )

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"


#: The title of an appointment imported without its details (a private one, or the "without
#: details" import mode), as stored; the PSA shows it in the viewer's language
#: (:attr:`Appointment.display_title`). A test pins it to the extension's placeholder.
IMPORTED_PLACEHOLDER_TITLE = "Appointment"


class Appointment(models.Model):
    """A resource's own calendar entry (meeting, absence, travel), made in the PSA or imported."""

    class ShowAs(models.TextChoices):
        BUSY = "busy", _("Busy")
        FREE = "free", _("Free")
        TENTATIVE = "tentative", _("Tentative")
        OUT_OF_OFFICE = "oof", _("Out of office")

    class Origin(models.TextChoices):
        PSA = "psa", _("PSA")
        EXCHANGE = "exchange", _("Exchange")

    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="appointments", verbose_name=_("resource")
    )
    title = models.CharField(max_length=255, verbose_name=_("title"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    start = models.DateTimeField(verbose_name=_("start"))
    end = models.DateTimeField(verbose_name=_("end"))
    all_day = models.BooleanField(default=False, verbose_name=_("all day"))
    location = models.CharField(max_length=255, blank=True, verbose_name=_("location"))
    show_as = models.CharField(
        max_length=10, choices=ShowAs.choices, default=ShowAs.BUSY, verbose_name=_("show as")
    )
    private = models.BooleanField(default=False, verbose_name=_("private"))
    origin = models.CharField(
        max_length=10, choices=Origin.choices, default=Origin.PSA, verbose_name=_("origin")
    )
    read_only = models.BooleanField(
        default=False,
        help_text=_("Imported meetings the resource only attends cannot be edited."),
        verbose_name=_("read only"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["resource", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="appointment_end_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def display_title(self) -> str:
        """The title as shown: an imported placeholder title in the viewer's language."""
        if self.origin == self.Origin.EXCHANGE and self.title == IMPORTED_PLACEHOLDER_TITLE:
            return pgettext("title of an imported appointment without details", "Appointment")
        return self.title


class ServiceCall(models.Model):
    """On-site or remote work at an account, assigned to one or more resources."""

    class Status(models.TextChoices):
        NEW = "new", _("New")
        SCHEDULED = "scheduled", _("Scheduled")
        COMPLETE = "complete", _("Complete")
        CANCELLED = "cancelled", _("Cancelled")

    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="service_calls", verbose_name=_("account")
    )
    description = models.TextField(verbose_name=_("description"))
    start = models.DateTimeField(verbose_name=_("start"))
    end = models.DateTimeField(verbose_name=_("end"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.NEW, verbose_name=_("status")
    )
    location_override = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("Leave blank to use the account's address."),
        verbose_name=_("location override"),
    )
    resources = models.ManyToManyField(
        Resource, related_name="service_calls", blank=True, verbose_name=_("resources")
    )
    tickets = models.ManyToManyField(
        Ticket, related_name="service_calls", blank=True, verbose_name=_("tickets")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("service call")
        verbose_name_plural = _("service calls")
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="service_call_end_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
        ]

    def __str__(self) -> str:
        first_line = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return f"{self.account} – {first_line}"[:120] if self.account_id else first_line

    @property
    def location(self) -> str:
        return self.location_override or self.account.address_text

    @property
    def is_closed(self) -> bool:
        return self.status in (self.Status.COMPLETE, self.Status.CANCELLED)


class Todo(models.Model):
    """A follow-up for a resource at an account: a call to make, an email to send."""

    class ActionType(models.TextChoices):
        PHONE_CALL = "phone_call", _("Phone call")
        MEETING = "meeting", _("Meeting")
        EMAIL = "email", _("Email")
        REMOTE = "remote", _("Remote session")
        GENERAL = "general", _("General")

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="todos", verbose_name=_("account")
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="todos",
        verbose_name=_("contact"),
    )
    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="todos", verbose_name=_("resource")
    )
    action_type = models.CharField(
        max_length=20,
        choices=ActionType.choices,
        default=ActionType.GENERAL,
        verbose_name=_("action type"),
    )
    description = models.TextField(verbose_name=_("description"))
    start = models.DateTimeField(verbose_name=_("start"))
    end = models.DateTimeField(help_text=_("Due"), verbose_name=_("end"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("todo")
        verbose_name_plural = _("todos")
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["resource", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gte=F("start")),
                name="todo_end_not_before_start",
                violation_error_message=_("The due time cannot be before the start."),
            ),
        ]

    def __str__(self) -> str:
        first_line = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return f"{self.get_action_type_display()}: {first_line}"[:120]

    @property
    def completed(self) -> bool:
        return self.completed_at is not None

    def clean(self) -> None:
        if self.contact_id and self.account_id and self.contact.account_id != self.account_id:
            raise ValidationError({"contact": _("The contact must belong to the to-do's account.")})
