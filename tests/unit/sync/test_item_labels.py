"""The words of exported items enter the pure core as data (SPEC §1, "Languages"): English by
default, any language's patterns when given, a broken translation falling back to English."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from exchange_ext.sync.digest import digest_record
from exchange_ext.sync.labels import ENGLISH, ItemLabels
from exchange_ext.sync.mapping import (
    AccountValues,
    ServiceCallValues,
    TicketValues,
    TodoValues,
    deep_link,
    service_call_record,
    todo_record,
)
from exchange_ext.sync.records import SyncOptions

START = dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)
ACME = AccountValues("Acme 100% Ltd", "1 Main St", "+1 555 0100")
CALL = ServiceCallValues(
    psa_id=7, account=ACME, description="Replace the firewall", start=START,
    end=START + dt.timedelta(hours=2), tickets=(TicketValues("T-1", "Firewall %(down)s"),),
)  # fmt: skip
TODO = TodoValues(
    psa_id=9, account=ACME, action_type="Phone call", description="Call back\nmore",
    start=START, end=START, contact_name="Ada Lovelace", contact_phone="+1 555 0101",
)  # fmt: skip
GERMAN = ItemLabels(
    service_call_subject="Serviceeinsatz: %(account)s",
    todo_subject="%(action)s: %(summary)s",
    account_line="Firma: %(name)s",
    phone_line="Telefon: %(phone)s",
    ticket_line="Ticket %(number)s: %(title)s",
    contact_line="Kontakt: %(contact)s",
    open_in_psa="Im PSA öffnen: %(url)s",
)
JAPANESE = ItemLabels(
    service_call_subject="サービスコール: %(account)s",
    todo_subject="%(action)s：%(summary)s",
    account_line="取引先: %(name)s",
    phone_line="電話: %(phone)s",
    ticket_line="チケット %(number)s: %(title)s",
    contact_line="担当者: %(contact)s",
    open_in_psa="PSA で開く: %(url)s",
)


def test_the_defaults_are_the_english_text_the_records_always_carried():
    assert ItemLabels() == ENGLISH
    assert SyncOptions(installation_id="x").labels == ENGLISH
    record = service_call_record(CALL, "https://psa.example/")
    assert record.subject == "Service call: Acme 100% Ltd"
    assert record.body == (
        "Account: Acme 100% Ltd\nPhone: +1 555 0100\nTicket T-1: Firewall %(down)s\n\n"
        "Replace the firewall\n\nOpen in PSA: https://psa.example/calendar/service-calls/7/"
    )
    todo = todo_record(TODO, "https://psa.example")
    assert todo.subject == "Phone call: Call back"
    assert todo.body.splitlines()[:2] == [
        "Account: Acme 100% Ltd",
        "Contact: Ada Lovelace, +1 555 0101",
    ]
    assert deep_link("https://psa.example", "calendar/todos/9") == (
        "Open in PSA: https://psa.example/calendar/todos/9/"
    )


def test_given_labels_write_the_whole_text_in_that_language():
    record = service_call_record(CALL, "https://psa.example", GERMAN)
    assert record.subject == "Serviceeinsatz: Acme 100% Ltd"
    assert record.body.splitlines() == [
        "Firma: Acme 100% Ltd",
        "Telefon: +1 555 0100",
        "Ticket T-1: Firewall %(down)s",  # a value is put in once, never read as a pattern
        "",
        "Replace the firewall",
        "",
        "Im PSA öffnen: https://psa.example/calendar/service-calls/7/",
    ]
    todo = todo_record(TODO, "https://psa.example", JAPANESE)
    assert todo.subject == "Phone call：Call back"
    assert todo.body.splitlines()[0] == "取引先: Acme 100% Ltd"
    assert todo.body.splitlines()[1] == "担当者: Ada Lovelace, +1 555 0101"
    assert todo.body.endswith("PSA で開く: https://psa.example/calendar/todos/9/")


def test_a_to_do_without_description_is_titled_by_its_action_type_in_any_language():
    bare = dataclasses.replace(TODO, description="  ")
    assert todo_record(bare, "https://psa.example", JAPANESE).subject == "Phone call"
    assert todo_record(bare, "https://psa.example").subject == "Phone call"


def test_another_language_changes_the_details_digest_not_the_times():
    english = digest_record(service_call_record(CALL, "https://psa.example"))
    japanese = digest_record(service_call_record(CALL, "https://psa.example", JAPANESE))
    assert english.times == japanese.times
    assert english.details != japanese.details


@pytest.mark.parametrize(
    "broken", ["Firma: %(nom)s", "Firma: 100% %(name)s", "Firma: %s %s", "Firma: %(name)d"]
)
def test_a_broken_translation_falls_back_to_english(broken: str):
    labels = dataclasses.replace(GERMAN, account_line=broken)
    body = service_call_record(CALL, "https://psa.example", labels).body
    assert body.splitlines()[0] == "Account: Acme 100% Ltd"


def test_labels_are_frozen_data():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ENGLISH.account_line = "x"  # type: ignore[misc]
    assert hash(GERMAN) != hash(JAPANESE)
