"""Forms for appointments, to-dos and service calls.

Times are entered as local wall-clock date-times (``<input type="datetime-local">``) in the time
zone given to the form (the resource's) and leave ``cleaned_data`` as aware UTC. Times that do
not exist or happen twice around a DST change become errors on their field (see
``psa.scheduling.localtime``) — except an ambiguous time that is exactly the one the item already
had, which keeps its instant so an unrelated edit of an item at such a time still saves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import Q

from psa.crm.models import Account, Contact
from psa.resources.models import Resource
from psa.scheduling.localtime import LocalTimeError, day_start, to_local, to_utc
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo

INPUT_FORMAT = "%Y-%m-%dT%H:%M"


class LocalDateTimeField(forms.Field):
    """A naive wall-clock date-time; the form decides which zone it is in."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=INPUT_FORMAT)
    formats = (INPUT_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
    default_error_messages = {"invalid": "Enter a date and time like 2026-03-30 09:00."}

    def to_python(self, value: Any) -> dt.datetime | None:
        # Django's DateTimeField would attach the *server's* zone and reject DST edge cases
        # itself; the resource's zone is applied in ScheduleForm.clean() instead.
        if value in self.empty_values:
            return None
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None)
        for fmt in self.formats:
            try:
                return dt.datetime.strptime(str(value).strip(), fmt)
            except ValueError:
                continue
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class ScheduleForm(forms.Form):
    """Base of the item forms: ``start`` and ``end`` in ``tz``, converted to UTC on clean."""

    start = LocalDateTimeField(label="Start")
    end = LocalDateTimeField(label="End")
    end_may_equal_start = False
    end_error = "The end must be after the start."

    def __init__(self, *args: Any, tz: ZoneInfo, item: Any = None, **kwargs: Any) -> None:
        self.tz = tz
        self.item = item
        kwargs.setdefault("initial", self.initial_from(item) if item is not None else {})
        super().__init__(*args, **kwargs)

    def initial_from(self, item: Any) -> dict[str, Any]:
        return {"start": to_local(item.start, self.tz), "end": to_local(item.end, self.tz)}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return data
        start_utc, end_utc = self.instants(start, end)
        if start_utc is None or end_utc is None:
            return data
        if end_utc < start_utc or (end_utc == start_utc and not self.end_may_equal_start):
            self.add_error("end", self.end_error)
            return data
        data["start"], data["end"] = start_utc, end_utc
        return data

    def instants(
        self, start: dt.datetime, end: dt.datetime
    ) -> tuple[dt.datetime | None, dt.datetime | None]:
        return self.instant("start", start), self.instant("end", end)

    def instant(self, name: str, local: dt.datetime) -> dt.datetime | None:
        """The UTC instant of field ``name``'s value, or None after adding a field error."""
        try:
            return to_utc(local, self.tz)
        except LocalTimeError as error:
            kept = getattr(self.item, name, None)
            if kept is not None and to_local(kept, self.tz) == local:
                return kept
            self.add_error(name, str(error))
            return None


class AppointmentForm(ScheduleForm):
    """An appointment. All-day: the dates of ``start`` and ``end`` are the first and last day.

    All-day items are stored from local midnight of the first day to local midnight after the
    last day, which is how Exchange represents them.
    """

    title = forms.CharField(max_length=255)
    all_day = forms.BooleanField(required=False, label="All day")
    location = forms.CharField(max_length=255, required=False)
    show_as = forms.ChoiceField(choices=Appointment.ShowAs.choices, label="Show as")
    private = forms.BooleanField(required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)

    field_order = ["title", "start", "end", "all_day", "location", "show_as", "private"]

    def initial_from(self, item: Appointment) -> dict[str, Any]:
        initial = super().initial_from(item)
        if item.all_day:
            initial["end"] = to_local(item.end, self.tz) - dt.timedelta(days=1)
        fields = ("title", "all_day", "location", "show_as", "private", "description")
        return initial | {name: getattr(item, name) for name in fields}

    def instants(
        self, start: dt.datetime, end: dt.datetime
    ) -> tuple[dt.datetime | None, dt.datetime | None]:
        if not self.cleaned_data.get("all_day"):
            return super().instants(start, end)
        last_day = end.date() + dt.timedelta(days=1)
        return day_start(start.date(), self.tz), day_start(last_day, self.tz)


class TodoForm(ScheduleForm):
    """A to-do; ``completed`` keeps the original completion time when it stays ticked."""

    end = LocalDateTimeField(label="Due")
    end_may_equal_start = True
    end_error = "The due time cannot be before the start."

    account = forms.ModelChoiceField(queryset=Account.objects.all())
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.select_related("account"), required=False
    )
    action_type = forms.ChoiceField(choices=Todo.ActionType.choices, label="Action type")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    completed = forms.BooleanField(required=False)

    field_order = ["account", "contact", "action_type", "description", "start", "end"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["contact"].label_from_instance = lambda c: f"{c.full_name} ({c.account})"

    def initial_from(self, item: Todo) -> dict[str, Any]:
        fields = ("account", "contact", "action_type", "description")
        return (
            super().initial_from(item)
            | {name: getattr(item, name) for name in fields}
            | {"completed": item.completed}
        )

    def completed_at(self, now: dt.datetime) -> dt.datetime | None:
        if not self.cleaned_data["completed"]:
            return None
        previous = self.item.completed_at if self.item is not None else None
        return previous or now

    def action_fields(self, now: dt.datetime) -> dict[str, Any]:
        """Keyword arguments for ``do_create_todo`` / ``do_update_todo``."""
        names = ("account", "contact", "action_type", "description", "start", "end")
        return {name: self.cleaned_data[name] for name in names} | {
            "completed_at": self.completed_at(now)
        }


class ServiceCallForm(ScheduleForm):
    """A service call. ``can_assign=False`` shows the assignment but ignores posted changes."""

    account = forms.ModelChoiceField(queryset=Account.objects.all())
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    status = forms.ChoiceField(choices=ServiceCall.Status.choices)
    location_override = forms.CharField(
        max_length=255,
        required=False,
        label="Location",
        help_text="Leave blank to use the account's address.",
    )
    resources = forms.ModelMultipleChoiceField(
        queryset=Resource.objects.active(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Assigned resources",
    )
    tickets = forms.ModelMultipleChoiceField(
        queryset=Ticket.objects.all(), widget=forms.CheckboxSelectMultiple, required=False
    )

    field_order = ["account", "description", "start", "end", "status", "location_override"]

    def __init__(self, *args: Any, can_assign: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django ignores posted values of disabled fields and keeps the initial ones.
        self.fields["resources"].disabled = not can_assign
        if self.item is not None:
            self.fields["account"].disabled = True
            # Keep a resource that has since been deactivated visible and assigned.
            self.fields["resources"].queryset = Resource.objects.filter(
                Q(active=True) | Q(service_calls=self.item)
            ).distinct()

    def initial_from(self, item: ServiceCall) -> dict[str, Any]:
        fields = ("account", "description", "status", "location_override")
        return (
            super().initial_from(item)
            | {name: getattr(item, name) for name in fields}
            | {"resources": list(item.resources.all()), "tickets": list(item.tickets.all())}
        )

    def action_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``do_create_service_call`` / ``do_update_service_call``."""
        names = ["description", "start", "end", "status", "location_override", "tickets"]
        if self.item is None:
            names.append("account")
        if not self.fields["resources"].disabled:
            names.append("resources")
        return {name: self.cleaned_data[name] for name in names}
