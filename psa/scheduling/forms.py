"""Forms for appointments, to-dos and service calls.

Times are entered as local wall-clock date-times in the time zone given to the form (the
resource's) and leave ``cleaned_data`` as aware UTC. Each is a typed date and a typed time that
follow the product's language, not the browser's: ``30/03/2026 15:00`` in English,
``03/30/2026 3:00 PM`` in US English, ``30.03.2026`` in German (docs/i18n.md); ISO dates are
read in every language. Times that do
not exist or happen twice around a DST change become errors on their field (see
``psa.scheduling.localtime``) — except an ambiguous time that is exactly the one the item already
had, which keeps its instant so an unrelated edit of an item at such a time still saves.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import Q
from django.utils import dateformat, formats
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from psa.crm.models import Account, Contact
from psa.i18n.collation import collated
from psa.resources.models import Resource
from psa.scheduling.localtime import LocalTimeError, day_start, to_local, to_utc
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo

INPUT_FORMAT = "%Y-%m-%dT%H:%M"
DATE_VALUE_FORMAT = "%Y-%m-%d"  # ISO: what scripts and a native date picker send


def resource_order() -> tuple[Any, ...]:
    """Resources in checkbox lists: in the readers' order (docs/i18n.md, "Sorted lists")."""
    return collated("last_name"), collated("first_name"), "pk"


# "15:00", "9:05", "15:00:30", "3:00 PM", "3 pm", "3:00 p.m.", "12:30AM" (after NFKC, so that
# full-width digits typed with a Japanese or Chinese input method count too).
_TIME_TEXT = re.compile(
    r"^(?P<hour>\d{1,2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
    r"\s*(?:(?P<meridiem>[ap])\.?\s*m\.?)?$",
    re.IGNORECASE,
)
# The browser-side check of the time input: 24-hour "HH:MM"; US English also "h:mm AM/PM".
PATTERN_24_HOUR = r"([01]?[0-9]|2[0-3]):[0-5][0-9]"
PATTERN_12_HOUR = PATTERN_24_HOUR + r"|(0?[1-9]|1[0-2])(:[0-5][0-9])? ?[AaPp]\.? ?[Mm]\.?"


def twelve_hour_clock() -> bool:
    """Whether the active language shows times on a 12-hour clock (its TIME_FORMAT has AM/PM)."""
    return any(char in formats.get_format("TIME_FORMAT") for char in "aAghP")


def parse_time_text(text: str) -> dt.time | None:
    """A wall-clock time typed in any language's way (24-hour, or 12-hour with AM/PM)."""
    match = _TIME_TEXT.match(unicodedata.normalize("NFKC", text).strip())
    if match is None:
        return None
    hour, meridiem = int(match["hour"]), (match["meridiem"] or "").lower()
    if match["minute"] is None and not meridiem:
        return None  # a bare "15" is not a time
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    minute, second = int(match["minute"] or 0), int(match["second"] or 0)
    try:
        return dt.time(hour, minute, second)
    except ValueError:
        return None


def format_time_text(value: dt.time) -> str:
    """``value`` as the time input shows it in the active language: "15:00" or "3:00 PM"."""
    if not twelve_hour_clock():
        return f"{value:%H:%M}"
    return dateformat.time_format(value, "g:i A")  # "AM"/"PM" from Django's own catalogue


def date_field_format() -> str:
    """The strftime pattern of the typed date in the active language: ``%d/%m/%Y`` in English,
    ``%m/%d/%Y`` in US English, ``%d.%m.%Y`` in German, ``%Y/%m/%d`` in Japanese and Chinese
    (``DATE_FIELD_FORMAT`` of psa/formats); ISO for a language without one."""
    pattern = str(formats.get_format("DATE_FIELD_FORMAT"))
    return pattern if pattern.startswith("%") else DATE_VALUE_FORMAT


def date_field_hint(pattern: str) -> str:
    """What the date input's placeholder says: ``DD/MM/YYYY``, in German ``TT.MM.JJJJ``."""
    parts = {"%d": gettext("DD"), "%m": gettext("MM"), "%Y": gettext("YYYY")}
    for code, hint in parts.items():
        pattern = pattern.replace(code, hint)
    return pattern


def format_date_text(value: dt.date) -> str:
    """``value`` as the date input shows it in the active language."""
    return value.strftime(date_field_format())


def parse_date_text(text: str) -> dt.date | None:
    """A date typed in the active language's way, or ISO (what scripts, the former date input
    and the picker send), or in one of the language's other input formats."""
    text = unicodedata.normalize("NFKC", text).strip()
    patterns = (DATE_VALUE_FORMAT, date_field_format(), *formats.get_format("DATE_INPUT_FORMATS"))
    for fmt in patterns:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


class LocalDateInput(forms.TextInput):
    """The date part: typed text in the active language's order ("30/03/2026", "03/30/2026" in
    US English, "30.03.2026" in German), not a native date input, whose order follows the
    browser's locale whatever the product's language. static/psa.js adds a button that opens
    the browser's date picker (``data-date-format`` tells it how to write the date back)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"class": "date-part", "autocomplete": "off", "size": "10", "maxlength": "12"}
        super().__init__(attrs=base | (attrs or {}))

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, dt.date):
            return format_date_text(value)
        return super().format_value(value)  # posted text: shown as typed

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        pattern = date_field_format()
        hint = date_field_hint(pattern)
        context["widget"]["attrs"] |= {
            "placeholder": hint,
            "title": hint,
            "data-date-format": pattern,
            "data-picker-label": gettext("Choose a date"),
        }
        return context


class LocalTimeInput(forms.TextInput):
    """The time part: typed text in the active language's clock ("15:00", or "3:00 PM" in US
    English), checked by ``pattern`` in the browser and by ``parse_time_text`` on the server."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"class": "time-part", "autocomplete": "off", "size": "8", "maxlength": "11"}
        super().__init__(attrs=base | (attrs or {}))

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, dt.datetime):
            value = value.time()
        if isinstance(value, dt.time):
            return format_time_text(value)
        return super().format_value(value)  # posted text: shown as typed

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        attrs = context["widget"]["attrs"]
        if twelve_hour_clock():
            hint = gettext("h:mm AM/PM")
            attrs |= {"pattern": PATTERN_12_HOUR, "inputmode": "text"}
        else:
            hint = gettext("HH:MM")
            attrs |= {"pattern": PATTERN_24_HOUR, "inputmode": "numeric"}
        attrs |= {"placeholder": hint, "title": hint}
        return context


class LocalDateTimeWidget(forms.MultiWidget):
    """A date input (``<name>_0``) and a time input (``<name>_1``). A single ISO value posted
    under ``<name>`` ("2026-03-30T09:00", as the former ``datetime-local`` input sent) is read
    too."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__((LocalDateInput(), LocalTimeInput()), attrs)
        self.label: Any = ""

    def id_for_label(self, id_: str) -> str:
        # The label names the date input (Django's MultiWidget points it at nothing); the time
        # input is named by its aria-label.
        return f"{id_}_0" if id_ else id_

    def decompress(self, value: Any) -> list[Any]:
        if isinstance(value, str):
            value = LocalDateTimeField.parse_single(value) or value
        if isinstance(value, dt.datetime):
            return [value.date(), value.time()]
        if isinstance(value, dt.date):
            return [value, None]
        return [value, None] if value else [None, None]

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        if self.label:
            time_attrs = context["widget"]["subwidgets"][1]["attrs"]
            time_attrs["aria-label"] = gettext("%(label)s (time)") % {"label": self.label}
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if name in data:
            return data.get(name)
        return super().value_from_datadict(data, files, name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and super().value_omitted_from_data(data, files, name)


class LocalDateTimeField(forms.Field):
    """A naive wall-clock date-time; the form decides which zone it is in."""

    widget = LocalDateTimeWidget
    formats = (INPUT_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
    default_error_messages = {"invalid": _("Enter a date and time like 2026-03-30 09:00.")}

    def widget_attrs(self, widget: Any) -> dict[str, Any]:
        if isinstance(widget, LocalDateTimeWidget):
            widget.label = self.label  # names the time input for screen readers
        return super().widget_attrs(widget)

    @classmethod
    def parse_single(cls, text: str) -> dt.datetime | None:
        for fmt in cls.formats:
            try:
                return dt.datetime.strptime(text.strip(), fmt)
            except ValueError:
                continue
        return None

    def to_python(self, value: Any) -> dt.datetime | None:
        # Django's DateTimeField would attach the *server's* zone and reject DST edge cases
        # itself; the resource's zone is applied in ScheduleForm.clean() instead.
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None)
        if isinstance(value, (list, tuple)):
            date_text, time_text = (str(part or "").strip() for part in (*value, "", "")[:2])
            if not date_text and not time_text:
                return None
            day, time = parse_date_text(date_text), parse_time_text(time_text)
            if day is None or time is None:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            return dt.datetime.combine(day, time)
        if value in self.empty_values:
            return None
        parsed = self.parse_single(str(value))
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return parsed


class ScheduleForm(forms.Form):
    """Base of the item forms: ``start`` and ``end`` in ``tz``, converted to UTC on clean."""

    start = LocalDateTimeField(label=_("Start"))
    end = LocalDateTimeField(label=_("End"))
    end_may_equal_start = False
    end_error = _("The end must be after the start.")

    def __init__(self, *args: Any, tz: ZoneInfo, item: Any = None, **kwargs: Any) -> None:
        self.tz = tz
        self.item = item
        # The item's values, overridden by any given ``initial`` (a preset from the URL).
        preset = kwargs.get("initial") or {}
        kwargs["initial"] = (self.initial_from(item) if item is not None else {}) | preset
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

    title = forms.CharField(max_length=255, label=_("Title"))
    all_day = forms.BooleanField(required=False, label=_("All day"))
    location = forms.CharField(max_length=255, required=False, label=_("Location"))
    show_as = forms.ChoiceField(choices=Appointment.ShowAs.choices, label=_("Show as"))
    private = forms.BooleanField(required=False, label=_("Private"))
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, label=_("Description")
    )

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


class ContactSelect(forms.Select):
    """A contact list whose options name their account (``data-account``), so that the page's
    script can hide the other accounts' contacts at once when the account changes."""

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        contact = getattr(option["value"], "instance", None)
        if contact is not None:
            option["attrs"]["data-account"] = str(contact.account_id)
        return option


class TodoForm(ScheduleForm):
    """A to-do; ``completed`` keeps the original completion time when it stays ticked."""

    end = LocalDateTimeField(label=_("Due"))
    end_may_equal_start = True
    end_error = _("The due time cannot be before the start.")

    account = forms.ModelChoiceField(
        queryset=Account.objects.order_by(collated("name"), "pk"), label=_("Account")
    )
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.select_related("account").order_by(
            collated("first_name"), collated("last_name"), collated("account__name"), "pk"
        ),
        required=False,
        label=_("Contact"),
        widget=ContactSelect,
        error_messages={"invalid_choice": _("The contact must belong to the to-do's account.")},
    )
    action_type = forms.ChoiceField(choices=Todo.ActionType.choices, label=_("Action type"))
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label=_("Description"))
    completed = forms.BooleanField(required=False, label=_("Completed"))

    field_order = ["account", "contact", "action_type", "description", "start", "end"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        contact = self.fields["contact"]
        contact.label_from_instance = lambda c: f"{c.full_name} ({c.account})"
        # Once an account is chosen (posted, or the initial one) only its contacts are offered,
        # and a contact of another account posted anyway fails here, on the contact field.
        account_id = self.chosen_account_id()
        if account_id is not None:
            contact.queryset = contact.queryset.filter(account_id=account_id)
        # The hook of static/psa.js: which select follows this one.
        self.fields["account"].widget.attrs["data-filters"] = self["contact"].auto_id

    def chosen_account_id(self) -> int | None:
        """The account's id as posted (bound) or initially set (unbound); None if there is none
        or it is not a number a database key can hold. An id of no account filters every
        contact out (the account field then has its own error)."""
        value = self["account"].value()
        if isinstance(value, Account):
            value = value.pk
        try:
            number = int(value)
        except (TypeError, ValueError):
            return None
        return number if 0 < number < 2**63 else None

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

    account = forms.ModelChoiceField(
        queryset=Account.objects.order_by(collated("name"), "pk"), label=_("Account")
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label=_("Description"))
    status = forms.ChoiceField(choices=ServiceCall.Status.choices, label=_("Status"))
    location_override = forms.CharField(
        max_length=255,
        required=False,
        label=_("Location"),
        help_text=_("Leave blank to use the account's address."),
    )
    resources = forms.ModelMultipleChoiceField(
        queryset=Resource.objects.active().order_by(*resource_order()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("Assigned resources"),
    )
    tickets = forms.ModelMultipleChoiceField(
        queryset=Ticket.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("Tickets"),
    )

    field_order = ["account", "description", "start", "end", "status", "location_override"]

    def __init__(self, *args: Any, can_assign: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django ignores posted values of disabled fields and keeps the initial ones.
        self.fields["resources"].disabled = not can_assign
        if self.item is not None:
            self.fields["account"].disabled = True
            # Keep a resource that has since been deactivated visible and assigned.
            self.fields["resources"].queryset = (
                Resource.objects.filter(Q(active=True) | Q(service_calls=self.item))
                .distinct()
                .order_by(*resource_order())
            )

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
