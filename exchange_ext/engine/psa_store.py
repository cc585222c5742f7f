"""The PSA side of one mailbox's sync: read it as the planner's input, write ops back into it.

Reads take a constant number of queries whatever the item count. Writes go through the PSA's
``do_*`` actions with ``Origin.by_sync("exchange")``, so validation, the audit trail and the
``psa_item_changed`` signal (carrying the sync origin, which listeners use to ignore echoes)
stay in one place. A ValidationError on one item is returned as that item's error.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, fields

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import translation

from exchange_ext.engine.labels import resource_labels
from exchange_ext.models import ExchangeConfig, ItemLink, MailboxSettings
from exchange_ext.sync import ops as o
from exchange_ext.sync.mapping import (
    AccountValues,
    AppointmentValues,
    ContactValues,
    ServiceCallValues,
    TicketValues,
    TodoValues,
    appointment_record,
    appointment_values,
    contact_record,
    service_call_record,
    todo_record,
)
from exchange_ext.sync.records import (
    CalendarRecord,
    FieldGroup,
    ImportMode,
    ItemKind,
    PsaItem,
    PsaKey,
    Side,
    SyncOptions,
)
from exchange_ext.sync.windows import SyncWindow
from psa.audit.origin import Origin
from psa.crm.models import Account, Contact
from psa.i18n import chosen_language
from psa.scheduling.actions import (
    do_create_appointment,
    do_delete_appointment,
    do_update_appointment,
    do_update_todo,
)
from psa.scheduling.models import Appointment, ServiceCall, Todo

SYNC_ORIGIN = Origin.by_sync("exchange")

# Which PSA fields hold each field group of a calendar record, per writable kind.
_APPOINTMENT_FIELDS = {
    FieldGroup.TIMES: ("start", "end", "all_day"),
    FieldGroup.DETAILS: ("title", "description", "location", "show_as", "private"),
}
# To-dos take only their times back from Exchange (docs/sync-rules.md, "Directions").
_TODO_FIELDS = {FieldGroup.TIMES: ("start", "end"), FieldGroup.DETAILS: ()}


# --- options --------------------------------------------------------------------------------


def sync_options(config: ExchangeConfig, mailbox: MailboxSettings) -> SyncOptions:
    """The rules' settings for one mailbox: a kind syncs when on globally and on the profile."""
    toggles = {
        ItemKind.APPOINTMENT: config.sync_appointments and mailbox.export_appointments,
        ItemKind.SERVICE_CALL: config.sync_service_calls and mailbox.export_service_calls,
        ItemKind.TODO: config.sync_todos and mailbox.export_todos,
        ItemKind.CONTACT: config.sync_contacts and mailbox.export_contacts,
    }
    imports = config.sync_appointments and mailbox.import_appointments
    return SyncOptions(
        installation_id=str(config.installation_id),
        export_kinds=frozenset(kind for kind, on in toggles.items() if on),
        import_mode=ImportMode(config.import_mode) if imports else ImportMode.NONE,
        import_free_time=config.import_free_time,
        past_days=mailbox.past_days or config.past_days,
        recurring_days=mailbox.recurring_days or config.recurring_days,
        time_zone=mailbox.resource.time_zone,
        base_url=django_settings.PSA_BASE_URL,
        labels=resource_labels(mailbox.resource),
    )


# --- reading --------------------------------------------------------------------------------


def load_psa_items(
    mailbox: MailboxSettings,
    options: SyncOptions,
    window: SyncWindow,
    only: Collection[PsaKey] | None = None,
) -> dict[PsaKey, PsaItem]:
    """Every PSA item in this mailbox's scope: those ending in the window, plus every linked
    one whatever its dates (so the planner can tell "aged out" from "deleted").

    ``only``: just these keys (those a page touches; docs/performance.md, "Incremental
    planning") — the same rows the whole load would give for them, no others; a kind with no
    key asked for is not queried. A kind that is off is not loaded (the planner leaves its
    links alone). At most five queries.
    """
    loaders = {
        ItemKind.APPOINTMENT: _appointments,
        ItemKind.SERVICE_CALL: _service_calls,
        ItemKind.TODO: _todos,
        ItemKind.CONTACT: _contacts,
    }
    items: dict[PsaKey, PsaItem] = {}
    for kind, loader in loaders.items():
        ids = None if only is None else {key.psa_id for key in only if key.kind is kind}
        if ids is not None and not ids:
            continue
        items.update((item.key, item) for item in loader(mailbox, options, window, ids))
    return items


def _linked_ids(mailbox: MailboxSettings, kind: ItemKind) -> QuerySet[ItemLink, int]:
    return ItemLink.objects.filter(mailbox_settings=mailbox, kind=kind).values("psa_id")


# Just these PSA ids (a page's keys), or None: every item in scope.
_Ids = Collection[int] | None


def _in_scope(mailbox: MailboxSettings, kind: ItemKind, window: SyncWindow, ids: _Ids) -> Q:
    scope = Q(end__gt=window.start) | Q(pk__in=_linked_ids(mailbox, kind))
    return scope if ids is None else scope & Q(pk__in=list(ids))


_APPOINTMENT_COLUMNS = (
    "pk", "title", "description", "start", "end", "all_day", "location", "show_as", "private",
    "origin",
)  # fmt: skip


def _appointments(
    mailbox: MailboxSettings, options: SyncOptions, window: SyncWindow, ids: _Ids = None
) -> Iterable[PsaItem]:
    origins = []
    if ItemKind.APPOINTMENT in options.export_kinds:
        origins.append(Appointment.Origin.PSA)
    if options.import_mode is not ImportMode.NONE:
        origins.append(Appointment.Origin.EXCHANGE)
    # Plain tuples, not model instances: an export reads thousands of rows and builds its
    # own records from them (docs/performance.md, "Initial export").
    rows = Appointment.objects.filter(
        _in_scope(mailbox, ItemKind.APPOINTMENT, window, ids),
        resource_id=mailbox.resource_id,
        origin__in=origins,
    ).values_list(*_APPOINTMENT_COLUMNS, named=True)
    for row in rows if origins else ():
        values = AppointmentValues(
            title=row.title, description=row.description, start=row.start, end=row.end,
            all_day=row.all_day, location=row.location, show_as=row.show_as,
            private=row.private, time_zone=options.time_zone,
        )  # fmt: skip
        origin = Side.EXCHANGE if row.origin == Appointment.Origin.EXCHANGE else Side.PSA
        key = PsaKey(ItemKind.APPOINTMENT, row.pk)
        yield PsaItem(key, appointment_record(values), origin)


def _service_calls(
    mailbox: MailboxSettings, options: SyncOptions, window: SyncWindow, ids: _Ids = None
) -> Iterable[PsaItem]:
    if ItemKind.SERVICE_CALL not in options.export_kinds:
        return
    rows = (
        ServiceCall.objects.filter(
            _in_scope(mailbox, ItemKind.SERVICE_CALL, window, ids), resources=mailbox.resource_id
        )
        .select_related("account")
        .prefetch_related("tickets")
    )
    for row in rows:
        values = ServiceCallValues(
            psa_id=row.pk, account=_account(row.account), description=row.description,
            start=row.start, end=row.end, status=row.status,
            location_override=row.location_override,
            tickets=tuple(TicketValues(t.number, t.title) for t in row.tickets.all()),
            time_zone=options.time_zone,
        )  # fmt: skip
        # One copy per assigned resource: the key carries the resource.
        key = PsaKey(ItemKind.SERVICE_CALL, row.pk, mailbox.resource_id)
        yield PsaItem(key, service_call_record(values, options.base_url, options.labels))


def _todos(
    mailbox: MailboxSettings, options: SyncOptions, window: SyncWindow, ids: _Ids = None
) -> Iterable[PsaItem]:
    if ItemKind.TODO not in options.export_kinds:
        return
    rows = Todo.objects.filter(
        _in_scope(mailbox, ItemKind.TODO, window, ids), resource_id=mailbox.resource_id
    ).select_related("account", "contact")
    language = chosen_language(mailbox.resource)
    for row in rows:
        contact = row.contact
        with translation.override(language):  # the action type in the resource's language
            action_type = str(row.get_action_type_display())
        values = TodoValues(
            psa_id=row.pk, account=_account(row.account),
            action_type=action_type, description=row.description,
            start=row.start, end=row.end,
            contact_name=contact.full_name if contact else "",
            contact_phone=(contact.business_phone or contact.mobile_phone) if contact else "",
            contact_email=contact.email if contact else "",
            completed=row.completed, time_zone=options.time_zone,
        )  # fmt: skip
        record = todo_record(values, options.base_url, options.labels)
        yield PsaItem(PsaKey(ItemKind.TODO, row.pk), record)


def _contacts(
    mailbox: MailboxSettings, options: SyncOptions, window: SyncWindow, ids: _Ids = None
) -> Iterable[PsaItem]:
    """Active contacts of the accounts the resource manages, and the contacts of the open
    opportunities it owns. Leaving that scope (or going inactive) makes the item absent."""
    if ItemKind.CONTACT not in options.export_kinds:
        return
    resource_id = mailbox.resource_id
    scope = Q(account__account_manager_id=resource_id) | Q(
        opportunities__owner_id=resource_id, opportunities__closed=False
    )
    if ids is not None:
        scope &= Q(pk__in=list(ids))
    rows = Contact.objects.filter(scope, active=True).select_related("account").distinct()
    yield from (_contact_item(row) for row in rows)


def load_public_contacts() -> dict[PsaKey, PsaItem]:
    """Every active contact of every account, for the public contacts folder. One query.

    Inactive and deleted contacts are absent (the planner then deletes their copies).
    """
    rows = Contact.objects.filter(active=True).select_related("account")
    return {item.key: item for item in map(_contact_item, rows.iterator(chunk_size=2000))}


def _contact_item(row: Contact) -> PsaItem:
    values = ContactValues(
        first_name=row.first_name, last_name=row.last_name, title=row.title,
        account_name=row.account.name, emails=tuple(row.emails),
        business_phone=row.business_phone, mobile_phone=row.mobile_phone, fax=row.fax,
        street=row.street, city=row.city, state=row.state, postal_code=row.postal_code,
        country=row.country,
    )  # fmt: skip
    return PsaItem(PsaKey(ItemKind.CONTACT, row.pk), contact_record(values))


def _account(account: Account) -> AccountValues:
    return AccountValues(account.name, account.address_text, account.phone)


# --- writing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PsaWrite:
    """The outcome of one PSA op: the new item's id (creates), or the error in plain words."""

    psa_id: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


PsaOp = o.CreateInPsa | o.UpdatePsa | o.DeletePsa


def apply_psa_op(mailbox: MailboxSettings, op: PsaOp) -> PsaWrite:
    """Perform one PSA-side op through the actions; a validation failure is returned."""
    try:
        if isinstance(op, o.CreateInPsa):
            return PsaWrite(psa_id=_create_appointment(mailbox, op))
        if isinstance(op, o.UpdatePsa):
            _update(op)
        else:
            _delete(op)
    except ValidationError as error:
        return PsaWrite(error=_plain(error))
    return PsaWrite()


def _create_appointment(mailbox: MailboxSettings, op: o.CreateInPsa) -> int:
    assert isinstance(op.record, CalendarRecord)  # only appointments are imported
    values = _model_values(appointment_values(op.record))
    appointment = do_create_appointment(
        SYNC_ORIGIN,
        resource_id=mailbox.resource_id,
        origin=Appointment.Origin.EXCHANGE,
        read_only=op.read_only,
        **values,
    )
    return appointment.pk


def _update(op: o.UpdatePsa) -> None:
    assert isinstance(op.record, CalendarRecord)  # contacts and service calls never flow back
    values = _model_values(appointment_values(op.record))
    if op.key.kind is ItemKind.APPOINTMENT:
        wanted = _fields_of(_APPOINTMENT_FIELDS, op.fields)
        row = Appointment.objects.filter(pk=op.key.psa_id).first()
        if row is not None:
            do_update_appointment(SYNC_ORIGIN, row, **{f: values[f] for f in wanted})
    elif op.key.kind is ItemKind.TODO:
        wanted = _fields_of(_TODO_FIELDS, op.fields)
        todo = Todo.objects.filter(pk=op.key.psa_id).first()
        if todo is not None:
            do_update_todo(SYNC_ORIGIN, todo, **{f: values[f] for f in wanted})
    else:
        raise ValidationError(f"{op.key.kind} items do not take changes from Exchange")


def _delete(op: o.DeletePsa) -> None:
    if op.key.kind is not ItemKind.APPOINTMENT:
        raise ValidationError(f"{op.key.kind} items are never deleted from Exchange")
    row = Appointment.objects.filter(pk=op.key.psa_id).first()
    if row is not None:  # already gone: the delete is done
        do_delete_appointment(SYNC_ORIGIN, row)


def _fields_of(
    by_group: dict[FieldGroup, tuple[str, ...]], groups: frozenset[FieldGroup]
) -> list[str]:
    return [name for group in sorted(groups) for name in by_group[group]]


def _model_values(values: AppointmentValues) -> dict[str, object]:
    """AppointmentValues as Appointment model fields (the zone is the resource's, not stored)."""
    renamed = {"time_zone": None}
    return {f.name: getattr(values, f.name) for f in fields(values) if f.name not in renamed}


def _plain(error: ValidationError) -> str:
    """A ValidationError in plain words: 'field: message; …'."""
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
