"""Conflicts told in plain words (issue 15, item 4), from what a log entry stores: the note the
engine writes now, or only the English reason (entries written before notes existed, or a note
cut short). Never the internal key, never under Errors; a technician sees only their own."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from exchange_ext.engine.conflict_notes import conflict_message, read_note
from exchange_ext.models import ItemLink, SyncLogEntry, SyncRun
from exchange_ext.sync import ops as o
from exchange_ext.sync.records import CalendarRecord, FieldGroup, ItemKind, PsaKey, Side
from exchange_ext.web.conflicts import sentence
from tests import clock
from tests.builders import make_appointment, make_resource
from tests.clock import day
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin

pytestmark = pytest.mark.django_db
OLD_REASON = "both sides changed times; the origin side wins"
UTC = ZoneInfo("UTC")


def conflict_run(settings, key: str, message: str = OLD_REASON, kind: str = "appointment"):
    run = SyncRun.objects.create(
        mailbox_settings=settings, started_at=clock.now() - dt.timedelta(minutes=2),
        finished_at=clock.now(), outcome=SyncRun.Outcome.OK, conflicts=1,
    )  # fmt: skip
    SyncLogEntry.objects.create(run=run, level=SyncLogEntry.Level.CONFLICT, kind=kind,
                                psa_key=key, message=message)  # fmt: skip
    return run


def record(subject: str, start: str, end: str) -> CalendarRecord:
    return CalendarRecord(subject=subject, body="", start=day(1, start), end=day(1, end))


def test_an_old_entry_names_the_item_from_its_key_and_the_winner_from_its_link():
    tech = make_resource("tech1", email="tech1@northwind.example")
    settings = enable(tech)
    appointment = make_appointment(tech, day(1, "09:00"), title="Quarterly review")
    ItemLink.objects.create(mailbox_settings=settings, kind="appointment", psa_id=appointment.pk,
                            exchange_id="AAMk1", origin="psa")  # fmt: skip
    conflict_run(settings, f"appointment:{appointment.pk}")
    html = client_for(tech).get("/profile/exchange/").content.decode()
    assert 'id="conflicts-title"' in html and "Quarterly review" in html
    assert f'href="/calendar/appointments/{appointment.pk}/"' in html
    assert ("The change made in Outlook was replaced by the PSA&#x27;s, because the item was "
            "created in the PSA.") in html  # fmt: skip
    assert f"appointment:{appointment.pk}" not in html and "origin side" not in html


def test_a_deleted_items_conflict_reads_by_its_snapshot_title_without_a_link():
    tech = make_resource("tech1", email="tech1@northwind.example")
    settings = enable(tech)
    op = o.RecordConflict(PsaKey(ItemKind.APPOINTMENT, 38), frozenset({FieldGroup.TIMES}),
                          Side.PSA, "both sides changed times; the PSA side wins",
                          psa=record("Site visit", "09:00", "10:00"),
                          exchange=record("Site visit", "10:00", "11:00"))  # fmt: skip
    conflict_run(settings, "appointment:38", conflict_message(op))
    html = client_for(tech).get("/profile/exchange/").content.decode()
    assert "Site visit" in html and "/calendar/appointments/38/" not in html
    assert "appointment:38" not in html


def test_a_conflict_with_neither_note_nor_item_says_what_it_can():
    tech = make_resource("tech1", email="tech1@northwind.example")
    conflict_run(enable(tech), "appointment:38")
    html = client_for(tech).get("/profile/exchange/").content.decode()
    assert "Appointment (deleted)" in html
    assert "the change made where it was created was kept" in html
    assert "appointment:38" not in html


def test_an_outlook_win_says_the_psa_change_was_replaced():
    op = o.RecordConflict(PsaKey(ItemKind.APPOINTMENT, 5), frozenset(FieldGroup), Side.EXCHANGE,
                          "both sides changed details and times; the Exchange side wins",
                          psa=record("Dentist (PSA)", "09:00", "10:00"),
                          exchange=record("Dentist (Outlook)", "15:00", "16:00"))  # fmt: skip
    note = read_note(conflict_message(op))
    assert note is not None and note.winner == "exchange"
    assert sentence(note, note.winner, UTC) == (
        "The change made in the PSA (time 09:00–10:00, title “Dentist (PSA)”) was replaced by "
        "the one made in Outlook (time 15:00–16:00, title “Dentist (Outlook)”), because the "
        "item was created in Outlook."
    )


def test_a_move_to_another_day_shows_the_dates():
    psa = CalendarRecord(subject="Visit", body="", start=day(1, "09:00"), end=day(1, "10:00"))
    moved = CalendarRecord(subject="Visit", body="", start=day(3, "09:00"), end=day(3, "10:00"))
    op = o.RecordConflict(PsaKey(ItemKind.APPOINTMENT, 5), frozenset({FieldGroup.TIMES}),
                          Side.PSA, "r", psa=psa, exchange=moved)  # fmt: skip
    text = sentence(read_note(conflict_message(op)), "psa", UTC)
    assert day(3).strftime("%d/%m/%Y") in text and day(1).strftime("%d/%m/%Y") in text


@pytest.mark.parametrize("message", [OLD_REASON + "\n{not json", OLD_REASON + "\n[1, 2]",
                                     OLD_REASON + '\n{"fields": "x"}'])  # fmt: skip
def test_a_broken_note_falls_back_to_the_reason_only(message):
    assert read_note(message) is None


def test_a_hostile_title_is_escaped():
    tech = make_resource("tech1", email="tech1@northwind.example")
    settings = enable(tech)
    appointment = make_appointment(tech, day(1, "09:00"), title="<script>alert(1)</script>")
    conflict_run(settings, f"appointment:{appointment.pk}")
    html = client_for(tech).get("/profile/exchange/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_conflicts_are_not_filed_under_errors_in_the_run_log():
    tech = make_resource("tech1", email="tech1@northwind.example")
    settings = enable(tech)
    appointment = make_appointment(tech, day(1, "09:00"), title="Visit")
    run = conflict_run(settings, f"appointment:{appointment.pk}")
    run.errors = 1
    run.save()
    SyncLogEntry.objects.create(
        run=run, level=SyncLogEntry.Level.ERROR, kind="appointment", psa_key="appointment:99",
        message="Exchange refused the item.",
    )  # fmt: skip
    html = client_for(tech).get("/profile/exchange/").content.decode()
    log = html[html.index('id="sync-log-title"') :]
    details = log[log.index("<summary>Details</summary>") :]
    assert "Exchange refused the item." in details
    assert "Conflict" not in details[: details.index("</details>")]
    assert "xe-run-conflicts" in log


def test_a_technician_never_sees_a_colleagues_conflicts_but_an_admin_does():
    tech = make_resource("tech1", email="tech1@northwind.example")
    enable(tech)
    other = make_resource("tech2", email="tech2@northwind.example")
    secret = make_appointment(other, day(1, "09:00"), title="Colleague's private visit")
    conflict_run(enable(other), f"appointment:{secret.pk}")
    assert "Colleague" not in client_for(tech).get("/profile/exchange/").content.decode()
    admin_page = client_for(make_exchange_admin()).get(
        f"/extensions/exchange/resources/{other.pk}/"
    )
    assert "Colleague&#x27;s private visit" in admin_page.content.decode()
