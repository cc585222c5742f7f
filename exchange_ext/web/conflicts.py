"""Conflicts told in plain words (issue 15, item 4): which item, which change was kept and which
was dropped, and why — for the run log and the profile tab's "Conflicts" list.

Reads the conflict entries' notes (:mod:`exchange_ext.engine.conflict_notes`). An entry written
before notes existed has only its English reason: the item's title then comes from the PSA
item named by its key, and the winning side from the item's link (the origin side wins); what
cannot be known is left out rather than guessed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db.models import Model
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from exchange_ext.engine.conflict_notes import ConflictNote, SideValues, read_note
from exchange_ext.models import ItemLink, MailboxSettings, SyncLogEntry
from psa.crm.models import Contact
from psa.scheduling.models import Appointment, ServiceCall, Todo

#: Per kind: the PSA model, the URL name of the item's page, the kind's name.
KINDS: dict[str, tuple[type[Model], str, str]] = {
    "appointment": (Appointment, "appointment_edit", _("Appointment")),
    "service_call": (ServiceCall, "service_call_edit", _("Service call")),
    "todo": (Todo, "todo_edit", _("To-do")),
    "contact": (Contact, "crm:contact_detail", _("Contact")),
}


@dataclass(frozen=True)
class ConflictView:
    """One conflict as the pages show it."""

    when: dt.datetime  # the run's start
    kind: str  # the kind's name, translated
    title: str
    url: str  # the PSA item's page; "" when the item is gone
    sentence: str  # what was kept, what dropped, and why


def conflicts_of(entries: Iterable[SyncLogEntry], zone: str) -> list[ConflictView]:
    """The conflict entries among ``entries`` (with their ``run`` loaded), told in plain words;
    times in ``zone``. One query per kind for the titles, one for the links."""
    conflicts = [entry for entry in entries if entry.level == SyncLogEntry.Level.CONFLICT]
    items = _items_of(conflicts)
    origins = _origins_of(conflicts)
    views = []
    for entry in conflicts:
        kind, psa_id = _parse_key(entry)
        note = read_note(entry.message)
        item = items.get((kind, psa_id))
        winner = note.winner if note else origins.get((entry.run.mailbox_settings_id, kind, psa_id))
        model_kind = KINDS.get(kind)
        views.append(
            ConflictView(
                when=entry.run.started_at,
                kind=str(model_kind[2]) if model_kind else kind,
                title=_title(item, note, model_kind),
                url=_url(item, model_kind),
                sentence=sentence(note, winner, ZoneInfo(zone)),
            )
        )
    return views


def recent_conflicts(settings: MailboxSettings, zone: str, limit: int = 10) -> list[ConflictView]:
    """The mailbox's newest ``limit`` conflicts, newest first (the profile tab's list)."""
    if settings.pk is None:
        return []
    entries = (
        SyncLogEntry.objects.filter(
            run__mailbox_settings=settings, level=SyncLogEntry.Level.CONFLICT
        )
        .select_related("run")
        .order_by("-run__started_at", "-id")[:limit]
    )
    return conflicts_of(entries, zone)


def sentence(note: ConflictNote | None, winner: str | None, zone: ZoneInfo) -> str:
    """What was kept and what dropped, in plain words, with the values the note holds."""
    fields = note.fields if note else ()
    if winner not in ("psa", "exchange"):
        return gettext(
            "Both the PSA and Outlook changed this item; the change made where it was "
            "created was kept."
        )
    kept: SideValues | None = None
    dropped: SideValues | None = None
    if note is not None:
        kept, dropped = (note.psa, note.exchange) if winner == "psa" else (note.exchange, note.psa)
    kept_text = describe(kept, fields, zone, other=dropped)
    dropped_text = describe(dropped, fields, zone, other=kept)
    values = {"kept": kept_text, "dropped": dropped_text}
    if winner == "psa":
        if kept_text and dropped_text:
            return (
                gettext(
                    "The change made in Outlook (%(dropped)s) was replaced by the PSA's "
                    "(%(kept)s), because the item was created in the PSA."
                )
                % values
            )
        return gettext(
            "The change made in Outlook was replaced by the PSA's, because the item was "
            "created in the PSA."
        )
    if kept_text and dropped_text:
        return (
            gettext(
                "The change made in the PSA (%(dropped)s) was replaced by the one made in Outlook "
                "(%(kept)s), because the item was created in Outlook."
            )
            % values
        )
    return gettext(
        "The change made in the PSA was replaced by the one made in Outlook, because the item "
        "was created in Outlook."
    )


def describe(
    values: SideValues | None, fields: tuple[str, ...], zone: ZoneInfo, other: SideValues | None
) -> str:
    """``"time 10:00–11:00, title “Visit”"``: one side's contested values (the date is shown
    when the two sides' starts fall on different days, or for all-day items)."""
    if values is None:
        return ""
    parts = []
    if "times" in fields and values.start and values.end:
        same_day = other is not None and _day(other.start, zone) == _day(values.start, zone)
        parts.append(gettext("time %(span)s") % {"span": _span(values, zone, same_day)})
    if "details" in fields and values.subject:
        parts.append(gettext("title “%(title)s”") % {"title": values.subject})
    return ", ".join(parts)


def _span(values: SideValues, zone: ZoneInfo, same_day: bool) -> str:
    start = dt.datetime.fromisoformat(values.start).astimezone(zone)
    end = dt.datetime.fromisoformat(values.end).astimezone(zone)
    if values.all_day:
        return formats.date_format(start, "SHORT_DATE_FORMAT")
    end_text = formats.time_format(end) if end.date() == start.date() else _moment(end)
    start_text = formats.time_format(start) if same_day else _moment(start)
    return f"{start_text}–{end_text}"


def _moment(value: dt.datetime) -> str:
    return formats.date_format(value, "SHORT_DATETIME_FORMAT")


def _day(iso: str, zone: ZoneInfo) -> dt.date | None:
    return dt.datetime.fromisoformat(iso).astimezone(zone).date() if iso else None


def _parse_key(entry: SyncLogEntry) -> tuple[str, int | None]:
    """``("appointment", 38)`` from ``"appointment:38"`` (or ``"service_call:7@3"``)."""
    kind, _, rest = entry.psa_key.partition(":")
    number = rest.partition("@")[0]
    return entry.kind or kind, int(number) if number.isdigit() else None


def _items_of(entries: list[SyncLogEntry]) -> dict[tuple[str, int | None], Model]:
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        kind, psa_id = _parse_key(entry)
        if kind in KINDS and psa_id is not None:
            wanted.setdefault(kind, set()).add(psa_id)
    items: dict[tuple[str, int | None], Model] = {}
    for kind, ids in wanted.items():
        model = KINDS[kind][0]
        for item in model._default_manager.filter(pk__in=ids):
            items[(kind, item.pk)] = item
    return items


def _origins_of(entries: list[SyncLogEntry]) -> dict[tuple[int | None, str, int | None], str]:
    """The origin side of each entry's item (who wins a conflict), for entries without a note."""
    keys = {
        (e.run.mailbox_settings_id, *_parse_key(e)) for e in entries if read_note(e.message) is None
    }
    if not keys:
        return {}
    links = ItemLink.objects.filter(
        mailbox_settings_id__in={mailbox for mailbox, _, _ in keys},
        psa_id__in={psa_id for _, _, psa_id in keys if psa_id is not None},
    ).values_list("mailbox_settings_id", "kind", "psa_id", "origin")
    return {(mailbox, kind, psa_id): origin for mailbox, kind, psa_id, origin in links}


def _title(item: Model | None, note: ConflictNote | None, kind: tuple | None) -> str:
    if item is not None and str(item).strip():
        return str(item)
    if note and note.title:
        return note.title
    if kind is not None:
        return gettext("%(kind)s (deleted)") % {"kind": kind[2]}
    return gettext("An item (deleted)")


def _url(item: Model | None, kind: tuple | None) -> str:
    if item is None or kind is None:
        return ""
    return reverse(kind[1], args=[item.pk])
