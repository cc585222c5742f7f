"""Calendar items of the PSA. All datetimes are aware and stored in UTC.

Database constraints guard the invariants a sync relies on (an item ends after it starts, a
to-do's completion is consistent), so no writer — UI, admin, sync or a stray script — can store
an item Exchange would reject.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from psa.crm.models import Account, Contact
from psa.resources.models import Resource


class Ticket(models.Model):
    """A minimal ticket or project task that service calls refer to."""

    class Kind(models.TextChoices):
        TICKET = "ticket", "Ticket"
        TASK = "task", "Task"

    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        WAITING = "waiting", "Waiting customer"
        COMPLETE = "complete", "Complete"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TICKET)
    number = models.CharField(max_length=30, unique=True)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"


class Appointment(models.Model):
    """A resource's own calendar entry (meeting, absence, travel), made in the PSA or imported."""

    class ShowAs(models.TextChoices):
        BUSY = "busy", "Busy"
        FREE = "free", "Free"
        TENTATIVE = "tentative", "Tentative"
        OUT_OF_OFFICE = "oof", "Out of office"

    class Origin(models.TextChoices):
        PSA = "psa", "PSA"
        EXCHANGE = "exchange", "Exchange"

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="appointments")
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    all_day = models.BooleanField(default=False)
    location = models.CharField(max_length=255, blank=True)
    show_as = models.CharField(max_length=10, choices=ShowAs.choices, default=ShowAs.BUSY)
    private = models.BooleanField(default=False)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.PSA)
    read_only = models.BooleanField(
        default=False, help_text="Imported meetings the resource only attends cannot be edited."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["resource", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="appointment_end_after_start",
                violation_error_message="The end must be after the start.",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class ServiceCall(models.Model):
    """On-site or remote work at an account, assigned to one or more resources."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        SCHEDULED = "scheduled", "Scheduled"
        COMPLETE = "complete", "Complete"
        CANCELLED = "cancelled", "Cancelled"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="service_calls")
    description = models.TextField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    location_override = models.CharField(
        max_length=255, blank=True, help_text="Leave blank to use the account's address."
    )
    resources = models.ManyToManyField(Resource, related_name="service_calls", blank=True)
    tickets = models.ManyToManyField(Ticket, related_name="service_calls", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="service_call_end_after_start",
                violation_error_message="The end must be after the start.",
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
        PHONE_CALL = "phone_call", "Phone call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "Email"
        REMOTE = "remote", "Remote session"
        GENERAL = "general", "General"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="todos")
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="todos"
    )
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="todos")
    action_type = models.CharField(
        max_length=20, choices=ActionType.choices, default=ActionType.GENERAL
    )
    description = models.TextField()
    start = models.DateTimeField()
    end = models.DateTimeField(help_text="Due")
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["resource", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gte=F("start")),
                name="todo_end_not_before_start",
                violation_error_message="The due time cannot be before the start.",
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
            raise ValidationError({"contact": "The contact must belong to the to-do's account."})
