"""The sync keys an audited PSA write touches (exchange_ext/engine/psa_changes.py): every
write that can change an exported record names its key; unrelated writes name none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from exchange_ext.engine.psa_changes import Touched, touched_keys
from exchange_ext.sync.records import ItemKind, PsaKey
from psa.audit.models import AuditEntry
from psa.crm import actions as crm
from psa.resources import actions as resources
from psa.scheduling import actions as scheduling
from psa.scheduling.models import Appointment
from tests.builders import (
    TESTS,
    make_account,
    make_appointment,
    make_contact,
    make_opportunity,
    make_resource,
    make_service_call,
    make_ticket,
    make_todo,
)

pytestmark = pytest.mark.django_db


def touched_by(write: Callable[[], Any]) -> Touched:
    """What the audit entries ``write`` leaves touch."""
    cursor = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    write()
    return touched_keys(AuditEntry.objects.filter(id__gt=cursor).order_by("id"))


def appointment(pk: int) -> PsaKey:
    return PsaKey(ItemKind.APPOINTMENT, pk)


def call(pk: int) -> PsaKey:
    return PsaKey(ItemKind.SERVICE_CALL, pk)


def todo(pk: int) -> PsaKey:
    return PsaKey(ItemKind.TODO, pk)


def contact(pk: int) -> PsaKey:
    return PsaKey(ItemKind.CONTACT, pk)


NOTHING = Touched(frozenset(), frozenset())


# --- items touch their own key ----------------------------------------------------------------


def test_an_appointment_write_touches_its_key_whatever_the_field():
    tech, other = make_resource(), make_resource()
    created: list[Appointment] = []
    first = touched_by(lambda: created.append(make_appointment(tech)))
    row = created[0]

    assert first == Touched(frozenset({appointment(row.pk)}), frozenset())
    for fields in ({"title": "Moved"}, {"resource": other}, {"private": True}):
        assert touched_by(
            lambda f=fields: scheduling.do_update_appointment(TESTS, row, **f)
        ).keys == {appointment(row.pk)}
    gone = touched_by(lambda: scheduling.do_delete_appointment(TESTS, row))
    assert gone.keys == {appointment(row.pk)}


def test_a_service_call_write_touches_its_key_reassignment_and_tickets_included():
    first, second = make_resource(), make_resource()
    row = make_service_call([first])

    writes = [
        lambda: scheduling.do_update_service_call(TESTS, row, resources=[second]),
        lambda: scheduling.do_update_service_call(TESTS, row, tickets=[make_ticket()]),
        lambda: scheduling.do_update_service_call(TESTS, row, status="complete"),
        lambda: scheduling.do_delete_service_call(TESTS, row),
    ]
    for write in writes:
        assert touched_by(write) == Touched(frozenset({call(row.pk)}), frozenset())


def test_a_todo_write_touches_its_key():
    row = make_todo(make_resource())

    for fields in ({"description": "Again"}, {"resource": make_resource()}):
        assert touched_by(lambda f=fields: scheduling.do_update_todo(TESTS, row, **f)).keys == {
            todo(row.pk)
        }
    assert touched_by(lambda: scheduling.do_delete_todo(TESTS, row)).keys == {todo(row.pk)}


# --- contacts -----------------------------------------------------------------------------------


def test_a_contact_write_touches_it_and_the_todos_showing_what_changed():
    account = make_account()
    person = make_contact(account)
    naming = make_todo(make_resource(), account=account, contact=person)
    make_todo(make_resource(), account=account)  # shows no contact

    shown = touched_by(lambda: crm.do_update_contact(TESTS, person, business_phone="+1 555"))
    unshown = touched_by(lambda: crm.do_update_contact(TESTS, person, title="CFO"))
    inactive = touched_by(lambda: crm.do_update_contact(TESTS, person, active=False))

    assert shown.keys == {contact(person.pk), todo(naming.pk)}
    assert unshown.keys == inactive.keys == {contact(person.pk)}


def test_a_deleted_contact_touches_it_its_todos_and_nothing_is_left_unaudited():
    account, owner = make_account(), make_resource()
    person = make_contact(account)
    naming = make_todo(make_resource(), account=account, contact=person)
    make_opportunity(account, owner, contact=person)

    gone = touched_by(lambda: crm.do_delete_contact(TESTS, person))

    assert gone.keys == {contact(person.pk), todo(naming.pk)}
    naming.refresh_from_db()
    assert naming.contact is None


# --- accounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [{"name": "Renamed Ltd"}, {"phone": "+1 555"}, {"city": "Shelbyville"}]
)
def test_an_account_field_shown_in_records_touches_its_calls_todos_and_contacts(fields):
    account, elsewhere = make_account(), make_account()
    tech = make_resource()
    its = [
        call(make_service_call([tech], account=account).pk),
        todo(make_todo(tech, account=account).pk),
        contact(make_contact(account).pk),
    ]
    make_service_call([tech], account=elsewhere)
    make_todo(tech, account=elsewhere)
    make_contact(elsewhere)

    touched = touched_by(lambda: crm.do_update_account(TESTS, account, **fields))

    assert touched == Touched(frozenset(its), frozenset())


def test_an_account_manager_change_touches_every_contact_of_the_account():
    account = make_account()
    people = [make_contact(account), make_contact(account, active=False)]
    make_service_call([make_resource()], account=account)  # its record shows no manager
    make_contact(make_account())

    touched = touched_by(
        lambda: crm.do_update_account(TESTS, account, account_manager=make_resource())
    )

    assert touched.keys == {contact(p.pk) for p in people}


def test_a_deleted_account_touches_what_went_with_it():
    account, tech = make_account(), make_resource()
    person = make_contact(account)
    task = make_todo(tech, account=account, contact=person)
    make_opportunity(account, tech, contact=person)
    ticket = make_ticket(account=account)

    gone = touched_by(lambda: crm.do_delete_account(TESTS, account))

    assert gone.keys == {contact(person.pk), todo(task.pk)}
    ticket.refresh_from_db()
    assert ticket.account is None
    kinds = set(AuditEntry.objects.filter(action="delete").values_list("model", flat=True))
    assert {"crm.account", "crm.contact", "crm.opportunity", "scheduling.todo"} <= kinds


# --- opportunities ------------------------------------------------------------------------------


def test_an_opportunity_touches_its_contact_when_its_scope_may_change():
    account = make_account()
    person, other = make_contact(account), make_contact(account)
    created = []

    new = touched_by(
        lambda: created.append(make_opportunity(account, make_resource(), contact=person))
    )
    deal = created[0]
    owner = touched_by(lambda: crm.do_update_opportunity(TESTS, deal, owner=make_resource()))
    won = touched_by(lambda: crm.do_update_opportunity(TESTS, deal, stage="won"))
    moved = touched_by(lambda: crm.do_update_opportunity(TESTS, deal, contact=other))
    renamed = touched_by(lambda: crm.do_update_opportunity(TESTS, deal, title="Bigger deal"))
    gone = touched_by(lambda: crm.do_delete_opportunity(TESTS, deal))

    assert new.keys == owner.keys == won.keys == {contact(person.pk)}
    assert moved.keys == {contact(person.pk), contact(other.pk)}
    assert renamed == NOTHING
    assert gone.keys == {contact(other.pk)}


# --- tickets ------------------------------------------------------------------------------------


def test_a_ticket_shown_on_service_calls_touches_them():
    ticket = make_ticket()
    tech = make_resource()
    showing = make_service_call([tech], tickets=[ticket])
    make_service_call([tech])

    retitled = touched_by(lambda: scheduling.do_update_ticket(TESTS, ticket, title="Fixed"))
    status = touched_by(lambda: scheduling.do_update_ticket(TESTS, ticket, status="complete"))
    gone = touched_by(lambda: scheduling.do_delete_ticket(TESTS, ticket))

    assert retitled.keys == gone.keys == {call(showing.pk)}
    assert status == NOTHING
    assert list(showing.tickets.all()) == []


# --- resources ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"time_zone": "America/New_York"},
        {"language": "de"},
        {"active": False},
        {"email": "moved@example.test"},
    ],
)
def test_a_resource_settings_change_makes_its_mailbox_plan_everything(fields):
    tech = make_resource()

    touched = touched_by(lambda: resources.do_update_resource(TESTS, tech, **fields))

    assert touched == Touched(frozenset(), frozenset({tech.pk}))


def test_a_deleted_resource_touches_its_items_through_their_own_writes():
    tech, other = make_resource(), make_resource()
    meeting = make_appointment(tech)
    task = make_todo(tech)
    shared = make_service_call([tech, other])

    gone = touched_by(lambda: resources.do_delete_resource(TESTS, tech))

    assert gone.resources == {tech.pk}
    assert gone.keys == {appointment(meeting.pk), todo(task.pk), call(shared.pk)}
    assert list(shared.resources.all()) == [other]


# --- unrelated writes and batching --------------------------------------------------------------


def test_unrelated_writes_touch_nothing():
    account = make_account()
    make_service_call([make_resource()], account=account)
    make_todo(make_resource(), account=account)
    make_contact(account)

    assert touched_by(lambda: crm.do_update_account(TESTS, account, active=False)) == NOTHING
    assert touched_by(lambda: make_ticket()) == NOTHING
    assert touched_keys([]) == NOTHING


def test_dependents_are_resolved_in_a_constant_number_of_queries(django_assert_max_num_queries):
    tech = make_resource()
    accounts = [make_account() for _ in range(5)]
    for account in accounts:
        make_service_call([tech], account=account)
        make_opportunity(account, tech, contact=make_contact(account))
    ticket = make_ticket()
    cursor = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()
    for n, account in enumerate(accounts):
        crm.do_update_account(TESTS, account, name=f"Renamed {n}", account_manager=tech)
        crm.do_update_contact(TESTS, account.contacts.get(), email=f"x{n}@client.test")
        crm.do_update_opportunity(TESTS, account.opportunities.get(), stage="won")
    scheduling.do_update_ticket(TESTS, ticket, title="Batched")
    entries = list(AuditEntry.objects.filter(id__gt=cursor))

    with django_assert_max_num_queries(4):
        touched = touched_keys(entries)

    assert len([k for k in touched.keys if k.kind is ItemKind.SERVICE_CALL]) == 5
    assert len([k for k in touched.keys if k.kind is ItemKind.CONTACT]) == 5
