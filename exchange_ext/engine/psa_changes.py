"""Which sync keys the PSA's audited writes touch: the PSA side of the change cursor.

Every PSA write goes through an action and leaves an :class:`~psa.audit.models.AuditEntry`
(``psa/audit/writes.py``; the Django admin too, ``psa/audit/admin_writes.py``). A cycle reads
the entries after its cursor and plans only the keys :func:`touched_keys` returns
(docs/performance.md). A key planned although its record did not change is a no-op; a key
missed is a change not synced until the next full reconciliation, so this over-approximates.

Keys name no resource (``PsaKey.resource_id`` is None): the caller makes a service call's key
its mailbox's copy. Which mailbox shows an item is the loader's business
(``exchange_ext/engine/psa_store.py``): the touched key is planned in every mailbox reading the
entry, and one whose scope the item left plans it absent.

The mapping, model by model (``changes`` is ``{field: [old, new]}``; deletes record
``[old, None]`` for every field):

============================  ==============================================================
audited model                 keys
============================  ==============================================================
scheduling.appointment        (APPOINTMENT, id) — any write (a resource change moves it)
scheduling.servicecall        (SERVICE_CALL, id) — any write, its ``resources`` and
                              ``tickets`` many-to-many included
scheduling.todo               (TODO, id) — any write (account, contact, assignee included)
scheduling.ticket             (SERVICE_CALL, c) for each call ``c`` showing the ticket, when
                              its ``number`` or ``title`` changed (bodies list them); a deleted
                              ticket is first removed from its calls by audited writes
crm.contact                   (CONTACT, id) — any write (personal and public folders); and
                              (TODO, t) for each to-do naming the contact when a field its
                              body shows changed (names, phones, email); a deleted contact's
                              to-dos and opportunities lose it by their own audited writes
crm.account                   when a shown field changed (name, phone, address): every
                              service call, to-do and contact of the account (bodies and
                              company name); when ``account_manager`` changed: every contact
                              of the account (it enters or leaves the managers' scope). A
                              deleted account's to-dos, opportunities and contacts are deleted
                              by their own audited writes first (service calls protect it)
crm.opportunity               (CONTACT, c) for its contact, old and new, when ``owner``,
                              ``stage``, ``closed`` or ``contact`` changed, or on create and
                              delete (an open opportunity puts its contact in the owner's scope)
resources.resource            ``resources`` — any write: time zone, language (labels), email,
                              active and the rest are the mailbox's own settings, so its
                              mailbox plans everything
anything else                 nothing
============================  ==============================================================

The dependents are resolved with one query per dependent model per call, whatever the number
of entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from exchange_ext.sync.records import ItemKind, PsaKey
from psa.audit.models import AuditEntry
from psa.crm.models import Contact, Opportunity
from psa.scheduling.models import ServiceCall, Todo

#: Account fields a service call's, to-do's or contact's record shows (``_account`` and
#: ``_contact_item`` in exchange_ext/engine/psa_store.py).
ACCOUNT_SHOWN = frozenset({"name", "phone", "street", "city", "postal_code", "state", "country"})
#: Contact fields a to-do's record shows (``_todos`` in exchange_ext/engine/psa_store.py).
CONTACT_SHOWN_ON_TODOS = frozenset(
    {"first_name", "last_name", "business_phone", "mobile_phone", "email"}
)
#: Opportunity fields that decide whether its contact is in its owner's scope (``_contacts``).
OPPORTUNITY_SCOPE = frozenset({"owner", "stage", "closed", "contact"})
#: Ticket fields a service call's body shows.
TICKET_SHOWN = frozenset({"number", "title"})

_OWN_KEY = {
    "scheduling.appointment": ItemKind.APPOINTMENT,
    "scheduling.servicecall": ItemKind.SERVICE_CALL,
    "scheduling.todo": ItemKind.TODO,
    "crm.contact": ItemKind.CONTACT,
}


@dataclass(frozen=True)
class Touched:
    """What a batch of audit entries touched.

    ``keys``: the (kind, PSA id) keys whose record may have changed, resource-less.
    ``resources``: ids of resources whose own settings changed; their mailboxes plan
    everything.
    """

    keys: frozenset[PsaKey]
    resources: frozenset[int]


def touched_keys(entries: Iterable[AuditEntry]) -> Touched:
    """The keys and resources ``entries`` touch (see the module's table). At most four
    queries, none when no entry concerns an account, contact, opportunity or ticket; entries
    need only ``model``, ``action``, ``object_id`` and ``changes`` loaded."""
    keys: set[PsaKey] = set()
    resources: set[int] = set()
    account_shown: set[int] = set()  # accounts whose shown fields changed
    account_scope: set[int] = set()  # accounts whose manager changed
    contacts_shown: set[int] = set()  # contacts whose to-do-shown fields changed
    opportunities: set[int] = set()  # opportunities whose contact's scope may have changed
    tickets: set[int] = set()  # tickets whose shown fields changed

    for entry in entries:
        pk = _int(entry.object_id)
        if pk is None:
            continue
        changed = set(entry.changes or {})
        if entry.model in _OWN_KEY:
            keys.add(PsaKey(_OWN_KEY[entry.model], pk))
        if entry.model == "crm.contact" and changed & CONTACT_SHOWN_ON_TODOS:
            contacts_shown.add(pk)
        elif entry.model == "crm.account":
            if changed & ACCOUNT_SHOWN:
                account_shown.add(pk)
            if "account_manager" in changed:
                account_scope.add(pk)
        elif entry.model == "crm.opportunity":
            if changed & OPPORTUNITY_SCOPE or entry.action != AuditEntry.Action.UPDATE:
                opportunities.add(pk)
                keys.update(
                    PsaKey(ItemKind.CONTACT, c)
                    for c in _values((entry.changes or {}).get("contact"))
                )
        elif entry.model == "scheduling.ticket" and changed & TICKET_SHOWN:
            tickets.add(pk)
        elif entry.model == "resources.resource":
            resources.add(pk)

    keys.update(_dependents(account_shown, account_scope, contacts_shown, opportunities, tickets))
    return Touched(frozenset(keys), frozenset(resources))


def _dependents(
    account_shown: set[int],
    account_scope: set[int],
    contacts_shown: set[int],
    opportunities: set[int],
    tickets: set[int],
) -> Iterable[PsaKey]:
    if account_shown or tickets:
        calls = ServiceCall.objects.filter(
            Q(account_id__in=account_shown) | Q(tickets__in=tickets)
        ).values_list("pk", flat=True)
        yield from (PsaKey(ItemKind.SERVICE_CALL, pk) for pk in set(calls))
    if account_shown or contacts_shown:
        todos = Todo.objects.filter(
            Q(account_id__in=account_shown) | Q(contact_id__in=contacts_shown)
        ).values_list("pk", flat=True)
        yield from (PsaKey(ItemKind.TODO, pk) for pk in todos)
    if account_shown or account_scope:
        contacts = Contact.objects.filter(account_id__in=account_shown | account_scope)
        yield from (PsaKey(ItemKind.CONTACT, pk) for pk in contacts.values_list("pk", flat=True))
    if opportunities:
        current = Opportunity.objects.filter(pk__in=opportunities, contact__isnull=False)
        yield from (
            PsaKey(ItemKind.CONTACT, pk) for pk in current.values_list("contact_id", flat=True)
        )


def _values(change: Any) -> Iterable[int]:
    """The ids in a ``[old, new]`` change of a foreign key (either may be None)."""
    if isinstance(change, list):
        yield from (value for value in change if isinstance(value, int))


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
