"""The neutral data the sync core works on: keys, records per kind, items per side, links.

Everything here is a frozen dataclass or an enum, so plans can be compared with ``==`` and
nothing the planner is handed can change under it. Datetimes are aware; the core compares
instants, never wall-clock values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import StrEnum

from exchange_ext.sync.labels import ENGLISH, ItemLabels


class ItemKind(StrEnum):
    APPOINTMENT = "appointment"
    SERVICE_CALL = "service_call"
    TODO = "todo"
    CONTACT = "contact"

    @property
    def is_calendar(self) -> bool:
        return self is not ItemKind.CONTACT


class Side(StrEnum):
    PSA = "psa"
    EXCHANGE = "exchange"


class ShowAs(StrEnum):
    """Free/busy status in Exchange's own vocabulary (EWS LegacyFreeBusyStatus)."""

    BUSY = "Busy"
    FREE = "Free"
    TENTATIVE = "Tentative"
    OOF = "OOF"
    WORKING_ELSEWHERE = "WorkingElsewhere"


class FieldGroup(StrEnum):
    """The unit in which changes flow and conflict: a record's times, or everything else."""

    TIMES = "times"
    DETAILS = "details"


ALL_GROUPS: frozenset[FieldGroup] = frozenset(FieldGroup)


class CalendarItemType(StrEnum):
    """Exchange's CalendarItemType; occurrences are synced one by one, masters never."""

    SINGLE = "Single"
    OCCURRENCE = "Occurrence"
    EXCEPTION = "Exception"
    RECURRING_MASTER = "RecurringMaster"


class LinkState(StrEnum):
    LINKED = "linked"
    # The Exchange copy of a PSA-origin item was deleted there; re-exported on the next PSA change.
    EXCHANGE_DELETED = "exchange_deleted"
    # Detached on purpose (PSA delete of an Exchange item we may not delete): never re-imported.
    UNLINKED = "unlinked"


@dataclass(frozen=True)
class CalendarRecord:
    """The synced content of a calendar item (appointment, service call or to-do).

    ``time_zone`` (IANA name) says in which zone the item is written; it is not compared:
    the instants are what must agree.
    """

    subject: str
    body: str
    start: dt.datetime
    end: dt.datetime
    is_all_day: bool = False
    location: str = ""
    show_as: ShowAs = ShowAs.BUSY
    is_private: bool = False
    time_zone: str = "UTC"


@dataclass(frozen=True)
class ContactRecord:
    """The synced content of a contact. ``emails`` holds at most three addresses."""

    given_name: str
    surname: str
    job_title: str = ""
    company_name: str = ""
    emails: tuple[str, ...] = ()
    business_phone: str = ""
    mobile_phone: str = ""
    business_fax: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.surname}".strip()


Record = CalendarRecord | ContactRecord


def merge_groups(base: Record, source: Record, groups: frozenset[FieldGroup]) -> Record:
    """``base`` with the fields of ``groups`` taken from ``source``.

    TIMES are start, end, all-day and the zone they are written in; DETAILS are the rest.
    A contact has details only.
    """
    if not isinstance(base, CalendarRecord) or not isinstance(source, CalendarRecord):
        return source if FieldGroup.DETAILS in groups else base
    times = source if FieldGroup.TIMES in groups else base
    details = source if FieldGroup.DETAILS in groups else base
    return replace(
        details,
        start=times.start,
        end=times.end,
        is_all_day=times.is_all_day,
        time_zone=times.time_zone,
    )


@dataclass(frozen=True, order=True)
class PsaKey:
    """Identifies one PSA item in one mailbox.

    ``resource_id`` is set for service calls, which have one Exchange copy per assigned
    resource; for the other kinds the mailbox already implies the resource.
    """

    kind: ItemKind
    psa_id: int
    resource_id: int | None = None

    def __str__(self) -> str:
        suffix = "" if self.resource_id is None else f"@{self.resource_id}"
        return f"{self.kind}:{self.psa_id}{suffix}"


@dataclass(frozen=True)
class PsaTag:
    """The extended property written on every Exchange item this installation creates."""

    installation_id: str
    key: PsaKey

    def __str__(self) -> str:
        return f"{self.installation_id}/{self.key}"


_KIND_VALUES = frozenset(kind.value for kind in ItemKind)


def parse_tag(value: str) -> PsaTag | None:
    """Read a tag written by :class:`PsaTag`'s ``str``; ``None`` for anything else.

    Never raises: a tag is user-reachable data (any client can write extended properties).
    """
    installation_id, _, key_text = value.rpartition("/")
    kind_text, _, rest = key_text.partition(":")
    id_text, _, resource_text = rest.partition("@")
    if not installation_id or kind_text not in _KIND_VALUES:
        return None
    if not id_text.isdigit() or (resource_text and not resource_text.isdigit()):
        return None
    resource_id = int(resource_text) if resource_text else None
    return PsaTag(installation_id, PsaKey(ItemKind(kind_text), int(id_text), resource_id))


def occurrence_id(master_id: str, original_start: dt.datetime) -> str:
    """The stable id of one occurrence of a recurring series: master id + original start.

    EWS occurrence ItemIds are positional and Graph's instance ids change with the series, so
    backends report occurrences under this id instead.
    """
    return f"{master_id}|{original_start.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}"


def master_of(exchange_id: str) -> str | None:
    """The master id of an :func:`occurrence_id`, or ``None`` for a plain item id."""
    master_id, separator, _ = exchange_id.rpartition("|")
    return master_id if separator else None


def original_start_of(exchange_id: str) -> dt.datetime | None:
    """The original start an :func:`occurrence_id` names, or ``None`` for a plain item id."""
    _, separator, stamp = exchange_id.rpartition("|")
    if not separator:
        return None
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def identity_of(ical_uid: str, original_start: dt.datetime | None) -> str | None:
    """What names one calendar item whatever protocol read it and whatever its id is now: its
    iCalendar UID, plus the original start for an occurrence of a series (whose UID is the
    series'). ``None`` without a UID (docs/sync-rules.md, "Re-identification").

    Exchange ids are per protocol (an EWS ItemId is not a Graph event id) and change when an
    item moves to another mailbox; the UID stays (EWS ``UID``, Graph ``uid``).
    """
    if not ical_uid:
        return None
    if original_start is None:
        return ical_uid
    return f"{ical_uid}|{original_start.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}"


@dataclass(frozen=True)
class PsaItem:
    """One PSA item as the sync sees it: its key, its record, where it was born.

    ``record`` is the item's content in Exchange terms (as exported, or as imported for
    Exchange-origin appointments), so both sides' digests measure the same fields.
    """

    key: PsaKey
    record: Record
    origin: Side = Side.PSA


@dataclass(frozen=True)
class ExchangeItem:
    """One Exchange item (or one occurrence of a series) as a backend read it."""

    exchange_id: str
    change_key: str
    record: Record
    psa_tag: PsaTag | None = None
    is_organizer: bool = True
    has_attendees: bool = False
    attendees: tuple[str, ...] = ()
    calendar_item_type: CalendarItemType = CalendarItemType.SINGLE
    # The iCalendar UID (a series' for its occurrences) and, for an occurrence or exception,
    # its original start: the item's identity across protocols and mailboxes.
    ical_uid: str = ""
    original_start: dt.datetime | None = None

    @property
    def master_id(self) -> str | None:
        return master_of(self.exchange_id)

    @property
    def identity(self) -> str | None:
        """See :func:`identity_of`."""
        return identity_of(self.ical_uid, self.original_start)


@dataclass(frozen=True)
class Digest:
    """Content digest of a record, per field group (sha256 hex each).

    Stored as ``str(digest)`` and read back with :meth:`parse`.
    """

    times: str
    details: str

    def __str__(self) -> str:
        return f"{self.times}:{self.details}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Read a stored digest; an unknown or empty value parses as "matches nothing"."""
        times, _, details = value.partition(":")
        return cls(times, details)

    def part(self, group: FieldGroup) -> str:
        return self.times if group is FieldGroup.TIMES else self.details

    def with_parts(self, source: Digest, groups: frozenset[FieldGroup]) -> Digest:
        """This digest with the given groups taken from ``source``."""
        times = source.times if FieldGroup.TIMES in groups else self.times
        details = source.details if FieldGroup.DETAILS in groups else self.details
        return Digest(times, details)

    def changed_groups(self, baseline: Digest) -> frozenset[FieldGroup]:
        return frozenset(g for g in FieldGroup if self.part(g) != baseline.part(g))


EMPTY_DIGEST = Digest("", "")


@dataclass(frozen=True)
class Link:
    """The baseline of one synced item in one mailbox: what both sides held after the last sync.

    Digests are per side, each of that side's record (the PSA's in PSA terms, e.g. an imported
    private item as "Appointment"); a side changed when its digest moved from here.
    """

    key: PsaKey
    exchange_id: str
    change_key: str
    psa_digest: Digest
    exchange_digest: Digest
    origin: Side = Side.PSA
    state: LinkState = LinkState.LINKED
    # The Exchange copy's start and organizer flag at the last sync: a PSA delete of an
    # Exchange-origin item is decided on them without reading the item again.
    exchange_start: dt.datetime | None = None
    is_organizer: bool = True
    # The Exchange item's identity as of the last sync (:func:`identity_of`), kept for imported
    # items: one is found again by it when its id changed (EWS ⇄ Graph, a mailbox move).
    ical_uid: str = ""
    original_start: dt.datetime | None = None

    @property
    def identity(self) -> str | None:
        return identity_of(self.ical_uid, self.original_start)


class ImportMode(StrEnum):
    ALL = "all"
    TIMES_ONLY = "times_only"
    NONE = "none"


@dataclass(frozen=True)
class SyncOptions:
    """Everything configurable that the rules depend on, for one mailbox.

    Built from ExchangeConfig + MailboxSettings by the engine: a kind is in ``export_kinds`` only
    when it is on globally and on the profile; ``import_mode`` is ``NONE`` when either turned
    import off. Mass-delete guard: trips when deletions on one side exceed both
    ``guard_min_items`` and ``guard_ratio`` of the linked items.
    """

    installation_id: str
    export_kinds: frozenset[ItemKind] = frozenset(ItemKind)
    import_mode: ImportMode = ImportMode.ALL
    import_free_time: bool = True
    past_days: int = 7
    recurring_days: int = 14
    time_zone: str = "UTC"
    base_url: str = ""
    guard_min_items: int = 20
    guard_ratio: float = 0.5
    # Set for one run by an admin who confirmed the deletions the guard stopped.
    guard_overridden: bool = False
    # The words written into exported items, in the resource's language (English by default).
    labels: ItemLabels = ENGLISH

    def tag_for(self, key: PsaKey) -> PsaTag:
        return PsaTag(self.installation_id, key)


@dataclass(frozen=True)
class ExchangeView:
    """What the planner knows of the mailbox this run.

    ``full_read``: ``items`` is everything in the window (a linked item absent from it is gone).
    Otherwise ``items`` are the changes since the last durable state and ``deleted`` the ids
    deleted since; items not mentioned are unchanged. ``expanded_series`` lists masters whose
    occurrences in the window are all in ``items`` even in an incremental view (a CalendarView
    read), so a linked occurrence of such a master that is absent was deleted.
    ``tagged`` holds items found by tag lookup outside the view (``find_by_tag``).
    ``unchanged`` lists ids the read found exactly as their links hold them (not read again,
    docs/performance.md): present, so never gone, even in a full read.
    """

    items: tuple[ExchangeItem, ...] = ()
    deleted: frozenset[str] = frozenset()
    full_read: bool = False
    expanded_series: frozenset[str] = frozenset()
    tagged: tuple[ExchangeItem, ...] = field(default=())
    unchanged: frozenset[str] = frozenset()
