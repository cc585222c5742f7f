"""The sync engine over the ORM and a MemoryBackend: rules per kind and the run invariants."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext import engine
from exchange_ext.backends.base import (
    AuthFailed,
    FolderKind,
    MailboxSession,
    Throttled,
    Unavailable,
)
from exchange_ext.backends.memory import MemoryBackend, MemorySession
from exchange_ext.engine import cycle, leases
from exchange_ext.models import (
    FolderSyncState,
    ItemLink,
    MailboxSettings,
    SyncLogEntry,
    SyncRun,
)
from exchange_ext.sync.records import CalendarRecord, ContactRecord, ShowAs
from psa.audit.models import AuditEntry
from psa.audit.origin import Origin
from psa.crm.actions import do_update_account
from psa.scheduling.actions import (
    do_delete_appointment,
    do_update_appointment,
    do_update_service_call,
    do_update_todo,
)
from psa.scheduling.models import Appointment, Todo
from tests import clock
from tests.builders import (
    make_account,
    make_appointment,
    make_contact,
    make_opportunity,
    make_resource,
    make_service_call,
    make_todo,
)
from tests.clock import day

pytestmark = pytest.mark.django_db

USER = Origin.by_system("tests")


class Crash(Exception):
    """The worker died (simulated)."""


def enrol(resource, **fields) -> MailboxSettings:
    return MailboxSettings.objects.create(
        resource=resource, sync_enabled=True, mailbox=resource.email, **fields
    )


@pytest.fixture
def tech(config):
    resource = make_resource("tech")
    return enrol(resource)


@pytest.fixture
def backend(tech) -> MemoryBackend:
    return MemoryBackend([tech.effective_mailbox], page_size=3)


def sync(mailbox: MailboxSettings, backend, **kwargs) -> SyncRun:
    return engine.run_sync(
        mailbox.pk, backend=backend, now=kwargs.pop("now", clock.now()), **kwargs
    )


def in_exchange(backend: MemoryBackend, mailbox: MailboxSettings, folder=None) -> list:
    return backend.items_of(mailbox.effective_mailbox, folder)


def subjects(backend, mailbox) -> list[str]:
    return sorted(
        item.record.subject for item in in_exchange(backend, mailbox, FolderKind.CALENDAR)
    )


def sync_audits() -> int:
    return AuditEntry.objects.filter(origin_kind="sync").count()


def event(subject: str, begin: dt.datetime, hours: float = 1, **fields) -> CalendarRecord:
    return CalendarRecord(subject, "", begin, begin + dt.timedelta(hours=hours), **fields)


def assert_quiet(mailbox, backend) -> None:
    writes, audits = backend.writes(), sync_audits()
    run = sync(mailbox, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert (backend.writes(), sync_audits()) == (writes, audits)


# --- appointments -------------------------------------------------------------------------


def test_psa_appointments_are_exported_and_a_second_run_writes_nothing(tech, backend):
    for n in range(5):
        make_appointment(tech.resource, day(1 + n % 3, "09:00"), title=f"Visit {n}")
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert run.counts == {"appointment": {"exchange": {"created": 5}}}
    assert run.exchange_summary == "5 created"
    assert ItemLink.objects.filter(mailbox_settings=tech).count() == 5
    assert_quiet(tech, backend)


def test_an_outlook_time_change_flows_back_and_a_subject_edit_is_ignored(tech, backend):
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    sync(tech, backend)
    (item,) = in_exchange(backend, tech)
    moved = event("Renamed in Outlook", day(1, "11:00"), hours=2)
    backend.edit(tech.effective_mailbox, item.exchange_id, moved)
    run = sync(tech, backend)
    appointment.refresh_from_db()
    assert (appointment.start, appointment.end) == (day(1, "11:00"), day(1, "13:00"))
    assert appointment.title == "Visit"
    assert run.counts == {"appointment": {"psa": {"updated": 1}}}
    entry = AuditEntry.objects.filter(origin_kind="sync").get()
    assert entry.origin_source == "exchange"
    # The next PSA change overwrites the ignored subject edit.
    do_update_appointment(USER, appointment, location="Room 2")
    sync(tech, backend)
    assert subjects(backend, tech) == ["Visit"]
    assert_quiet(tech, backend)


def test_an_outlook_delete_is_not_reflected_and_the_next_psa_change_re_exports(tech, backend):
    appointment = make_appointment(tech.resource, title="Visit")
    sync(tech, backend)
    (item,) = in_exchange(backend, tech)
    backend.remove(tech.effective_mailbox, item.exchange_id)
    sync(tech, backend)
    assert Appointment.objects.filter(pk=appointment.pk).exists()
    assert ItemLink.objects.get().state == "exchange_deleted"
    assert_quiet(tech, backend)
    do_update_appointment(USER, appointment, title="Visit (moved)")
    sync(tech, backend)
    assert subjects(backend, tech) == ["Visit (moved)"]


def test_a_psa_delete_deletes_the_exchange_copy(tech, backend):
    appointment = make_appointment(tech.resource)
    sync(tech, backend)
    do_delete_appointment(USER, appointment)
    run = sync(tech, backend)
    assert in_exchange(backend, tech) == []
    assert run.counts == {"appointment": {"exchange": {"deleted": 1}}}
    assert not ItemLink.objects.exists()


def test_exchange_appointments_are_imported_read_only_when_only_attending(tech, backend):
    box = tech.effective_mailbox
    backend.put(box, event("Dentist", day(1, "15:00")))
    backend.put(box, event("Board meeting", day(2, "10:00")), is_organizer=False)
    backend.put(box, event("Lunch", day(2, "12:00"), show_as=ShowAs.FREE))
    backend.put(box, event("Therapy", day(3, "10:00"), is_private=True))
    run = sync(tech, backend)
    rows = {a.title: a for a in Appointment.objects.all()}
    assert set(rows) == {"Dentist", "Board meeting", "Lunch", "Appointment"}
    assert rows["Board meeting"].read_only and not rows["Dentist"].read_only
    assert all(a.origin == "exchange" for a in rows.values())
    assert rows["Appointment"].description == ""  # private: no details
    assert run.counts == {"appointment": {"psa": {"created": 4}}}
    assert_quiet(tech, backend)


def test_import_without_details_and_without_free_time(tech, backend, config):
    config.import_mode = "times_only"
    config.import_free_time = False
    config.save()
    backend.put(tech.effective_mailbox, event("Dentist", day(1, "15:00")))
    backend.put(tech.effective_mailbox, event("Lunch", day(2, "12:00"), show_as=ShowAs.FREE))
    sync(tech, backend)
    assert list(Appointment.objects.values_list("title", "description")) == [("Appointment", "")]


def test_import_mode_none_imports_nothing(tech, backend, config):
    config.import_mode = "none"
    config.save()
    backend.put(tech.effective_mailbox, event("Dentist", day(1, "15:00")))
    sync(tech, backend)
    assert not Appointment.objects.exists()


def test_exchange_changes_and_deletes_of_imported_items_flow_to_the_psa(tech, backend):
    exchange_id = backend.put(tech.effective_mailbox, event("Dentist", day(1, "15:00")))
    sync(tech, backend)
    backend.edit(tech.effective_mailbox, exchange_id, event("Dentist (new)", day(1, "16:00")))
    sync(tech, backend)
    assert Appointment.objects.get().title == "Dentist (new)"
    backend.remove(tech.effective_mailbox, exchange_id)
    sync(tech, backend)
    assert not Appointment.objects.exists()


def test_a_zero_length_exchange_item_is_normalised_and_the_others_sync(tech, backend):
    box = tech.effective_mailbox
    backend.put(box, event("Zero length", day(1, "15:00"), hours=0))  # the PSA refuses it as is
    backend.put(box, event("Dentist", day(1, "16:00")))
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    rows = dict(Appointment.objects.values_list("title", "end"))
    assert rows == {"Zero length": day(1, "15:01"), "Dentist": day(1, "17:00")}
    assert_quiet(tech, backend)


def test_a_rejected_exchange_write_is_logged_and_retried(tech, config):
    backend = MemoryBackend(
        [tech.effective_mailbox], reject_if=lambda r: "too big" if "Bad" in r.subject else None
    )
    make_appointment(tech.resource, title="Bad one")
    make_appointment(tech.resource, day(2, "09:00"), title="Good one")
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.PARTIAL
    assert subjects(backend, tech) == ["Good one"]
    assert "too big" in SyncLogEntry.objects.get().message
    assert sync(tech, backend).errors == 1  # still failing, still only one copy of the good one


# --- service calls, to-dos, contacts ------------------------------------------------------


def test_service_call_copies_per_resource_removed_resource_loses_its_copy(tech, config):
    other = enrol(make_resource("other"))
    third = enrol(make_resource("third"))
    backend = MemoryBackend([m.effective_mailbox for m in (tech, other, third)])
    call = make_service_call([tech.resource, other.resource, third.resource])
    for mailbox in (tech, other, third):
        sync(mailbox, backend)
        assert subjects(backend, mailbox) == [f"Service call: {call.account.name}"]
    do_update_service_call(USER, call, resources=[tech.resource, other.resource])
    for mailbox in (tech, other, third):
        sync(mailbox, backend)
    assert [len(in_exchange(backend, m)) for m in (tech, other, third)] == [1, 1, 0]
    do_update_service_call(USER, call, status="complete")
    sync(tech, backend)
    assert in_exchange(backend, tech)[0].record.show_as is ShowAs.FREE


def test_exchange_edits_of_a_service_call_do_not_flow_back(tech, backend):
    call = make_service_call([tech.resource])
    sync(tech, backend)
    (item,) = in_exchange(backend, tech)
    backend.edit(tech.effective_mailbox, item.exchange_id, event("x", day(2, "12:00")))
    sync(tech, backend)
    call.refresh_from_db()
    assert call.start == day(2, "08:00")


def test_to_do_times_flow_back_and_other_edits_do_not(tech, backend):
    todo = make_todo(tech.resource)
    sync(tech, backend)
    (item,) = in_exchange(backend, tech)
    backend.edit(tech.effective_mailbox, item.exchange_id, event("Edited", day(1, "16:00")))
    sync(tech, backend)
    todo.refresh_from_db()
    assert (todo.start, todo.end) == (day(1, "16:00"), day(1, "17:00"))
    assert todo.description == "Call back about the backup report"
    do_update_todo(USER, Todo.objects.get(), completed_at=clock.now())
    sync(tech, backend)
    assert in_exchange(backend, tech)[0].record.show_as is ShowAs.FREE
    assert_quiet(tech, backend)


def test_contacts_in_scope_are_exported_and_leaving_scope_deletes_them(tech, backend):
    managed = make_account(account_manager=tech.resource)
    make_contact(managed, first_name="Ann")
    elsewhere = make_account()
    opportunity_contact = make_contact(elsewhere, first_name="Bob")
    make_opportunity(elsewhere, tech.resource, contact=opportunity_contact)
    make_contact(make_account(), first_name="Zed")  # out of scope
    sync(tech, backend)
    contacts = in_exchange(backend, tech, FolderKind.CONTACTS)
    assert sorted(c.record.given_name for c in contacts) == ["Ann", "Bob"]
    assert all(isinstance(c.record, ContactRecord) for c in contacts)
    do_update_account(USER, managed, account_manager=None)
    sync(tech, backend)
    assert [c.record.given_name for c in in_exchange(backend, tech, FolderKind.CONTACTS)] == ["Bob"]


def test_a_kind_turned_off_stops_syncing_and_leaves_exchange_alone(tech, backend):
    make_todo(tech.resource)
    sync(tech, backend)
    tech.export_todos = False
    tech.save()
    Todo.objects.all().delete()
    sync(tech, backend)
    assert len(in_exchange(backend, tech)) == 1


# --- invariants ---------------------------------------------------------------------------


def demo(mailbox) -> None:
    for n in range(4):
        make_appointment(mailbox.resource, day(1 + n, "09:00"), title=f"Visit {n}")
    make_todo(mailbox.resource)
    make_service_call([mailbox.resource])


def test_lost_links_are_rebuilt_from_tags_without_writes(tech, backend):
    demo(tech)
    sync(tech, backend)
    ItemLink.objects.all().delete()
    FolderSyncState.objects.all().delete()
    writes = backend.writes()
    sync(tech, backend)
    assert backend.writes() == writes
    assert ItemLink.objects.count() == 6


def test_a_restored_database_with_states_adopts_by_tag_instead_of_duplicating(tech, backend):
    demo(tech)
    sync(tech, backend)
    ItemLink.objects.all().delete()  # states kept: the feed will not show the items again
    sync(tech, backend)
    assert len(in_exchange(backend, tech)) == 6
    assert_quiet(tech, backend)


def test_an_expired_state_triggers_a_full_re_read_that_adopts(tech, backend):
    demo(tech)
    backend.put(tech.effective_mailbox, event("Dentist", day(1, "15:00")))
    sync(tech, backend)
    backend.expire_states()
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert len(in_exchange(backend, tech)) == 7
    assert Appointment.objects.filter(origin="exchange").count() == 1
    assert_quiet(tech, backend)


def test_a_resync_request_re_reads_everything_and_is_cleared(tech, backend):
    demo(tech)
    sync(tech, backend)
    MailboxSettings.objects.filter(pk=tech.pk).update(resync_requested_at=clock.now())
    writes = backend.writes()
    sync(tech, backend)
    assert backend.writes() == writes
    assert MailboxSettings.objects.get(pk=tech.pk).resync_requested_at is None


class CrashingSession:
    """Wraps a session: raises :class:`Crash` after the n-th write call succeeded."""

    def __init__(self, session: MailboxSession, after: int) -> None:
        self.session, self.left = session, after
        self.max_batch = 2  # several write calls per run, so a crash can hit each

    def __getattr__(self, name):
        inner = getattr(self.session, name)
        if name not in ("create", "update", "delete"):
            return inner

        def write(*args):
            result = inner(*args)
            self.left -= 1
            if self.left < 0:
                raise Crash(name)
            return result

        return write

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.session.close()


class CrashingBackend(MemoryBackend):
    crash_after: int | None = None

    def open_session(self, mailbox):
        session = super().open_session(mailbox)
        if self.crash_after is None:
            return session
        return CrashingSession(session, self.crash_after)


@pytest.mark.parametrize("crash_after", [0, 1, 2])
def test_a_crash_after_an_exchange_write_before_the_link_commit_converges(tech, crash_after):
    backend = CrashingBackend([tech.effective_mailbox], page_size=2)
    demo(tech)
    backend.crash_after = crash_after
    with pytest.raises(Crash):
        sync(tech, backend)
    assert SyncRun.objects.latest("id").outcome == SyncRun.Outcome.FAILED
    backend.crash_after = None
    sync(tech, backend)
    tags = [i.psa_tag for i in in_exchange(backend, tech)]
    assert len(tags) == len(set(tags)) == 6
    assert_quiet(tech, backend)


def test_a_crash_after_the_commit_converges(tech, backend, monkeypatch):
    demo(tech)
    real = leases.release

    def crash(*args):
        real(*args)
        raise Crash("after commit")

    monkeypatch.setattr(leases, "release", crash)
    with pytest.raises(Crash):
        sync(tech, backend)
    monkeypatch.setattr(leases, "release", real)
    assert len(in_exchange(backend, tech)) == 6
    assert_quiet(tech, backend)


def test_a_failed_page_never_advances_the_state_and_nothing_is_lost(tech, backend):
    sync(tech, backend)
    states = list(FolderSyncState.objects.values_list("folder", "state"))
    for n in range(7):
        backend.put(tech.effective_mailbox, event(f"New {n}", day(1 + n % 4, "10:00")))
    # The third page fails (a truncated response the backend refused to turn into a page).
    backend.fail_next(Unavailable("truncated"), operations=["read_changes"], after=2)
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.FAILED
    assert Appointment.objects.count() == 6  # two complete pages committed
    assert list(FolderSyncState.objects.values_list("folder", "state")) != states
    sync(tech, backend)
    assert Appointment.objects.count() == 7
    assert_quiet(tech, backend)


def test_a_budget_deadline_stops_between_pages_and_the_next_run_resumes(tech, backend, monkeypatch):
    sync(tech, backend)
    for n in range(7):
        backend.put(tech.effective_mailbox, event(f"New {n}", day(1, "10:00")))
    clock = [0.0]
    monkeypatch.setattr(cycle.time, "monotonic", lambda: clock[0])
    real_read = MemorySession.read_changes

    def slow_read(self, *args):
        clock[0] += 100  # every page takes 100 s
        return real_read(self, *args)

    monkeypatch.setattr(MemorySession, "read_changes", slow_read)
    run = sync(tech, backend, budget_seconds=50)
    assert run.outcome == SyncRun.Outcome.PARTIAL
    assert "time budget" in run.error
    assert Appointment.objects.count() == 3  # one page of three, committed with its state
    monkeypatch.setattr(MemorySession, "read_changes", real_read)
    sync(tech, backend)
    assert Appointment.objects.count() == 7


def test_a_run_while_another_holds_the_lease_is_skipped(tech, backend):
    class Reentrant(MemoryBackend):
        inner: SyncRun | None = None

        def open_session(self, mailbox):
            self.inner = self.inner or sync(tech, self)
            return super().open_session(mailbox)

    backend = Reentrant([tech.effective_mailbox])
    make_appointment(tech.resource)
    outer = sync(tech, backend)
    assert (outer.outcome, backend.inner.outcome) == ("ok", "skipped")
    assert len(in_exchange(backend, tech)) == 1


def test_a_stale_fencing_token_cannot_commit(tech, backend):
    class TakenOver(MemoryBackend):
        def open_session(self, mailbox):
            # Another worker claimed the mailbox after our lease expired.
            MailboxSettings.objects.filter(pk=tech.pk).update(lease_token=999)
            return super().open_session(mailbox)

    backend = TakenOver([tech.effective_mailbox])
    backend.put(tech.effective_mailbox, event("Dentist", day(1, "15:00")))
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.FAILED
    assert not Appointment.objects.exists()
    assert not ItemLink.objects.exists() and not FolderSyncState.objects.exists()


def test_the_mass_delete_guard_stops_and_applies_nothing_destructive(tech, backend):
    for n in range(30):
        make_appointment(tech.resource, day(1 + n % 5, f"0{n % 9}:00"), title=f"V{n}")
    sync(tech, backend)
    for appointment in Appointment.objects.all():  # one side suddenly empty
        do_delete_appointment(USER, appointment)
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert len(in_exchange(backend, tech)) == 30
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert settings.status == "held" and "Held 30 deletions" in settings.last_error


def test_a_psa_emptied_behind_the_audit_trail_is_found_by_the_daily_reconciliation(tech, backend):
    """A bulk delete in the database (a restored backup, a script) leaves no audit entry: the
    incremental cycles do not see it; the daily full plan does, and the guard holds it."""
    for n in range(30):
        make_appointment(tech.resource, day(1 + n % 5, f"0{n % 9}:00"), title=f"V{n}")
    sync(tech, backend)
    Appointment.objects.all().delete()
    assert sync(tech, backend).counts == {}
    run = sync(tech, backend, now=clock.now() + dt.timedelta(days=1, minutes=1))
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert len(in_exchange(backend, tech)) == 30
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert settings.status == "held" and "Held 30 deletions" in settings.last_error


@pytest.mark.parametrize(
    ("error", "status"),
    [(AuthFailed("401"), "disabled"), (Throttled(), "failing"), (Unavailable(), "failing")],
)
def test_session_errors_become_the_run_outcome_and_the_mailbox_status(tech, error, status):
    backend = MemoryBackend([tech.effective_mailbox])
    backend.fail_next(error)
    run = sync(tech, backend)
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert (run.outcome, settings.status) == ("failed", status)
    assert settings.last_error and settings.lease_expires_at is None
    if status == "disabled":
        assert sync(tech, backend).outcome == "skipped"
    else:
        assert sync(tech, backend).outcome == "ok"
        assert MailboxSettings.objects.get(pk=tech.pk).status == "ok"


def test_runs_are_pruned_to_the_newest(tech, backend, monkeypatch):
    monkeypatch.setattr("exchange_ext.engine.runs.KEEP_RUNS", 3)
    for _ in range(5):
        sync(tech, backend)
    assert SyncRun.objects.count() <= 5  # the default keep applies per call
    from exchange_ext.engine.runs import prune_runs

    prune_runs(tech.pk, keep=3)
    assert SyncRun.objects.count() == 3


# --- re-identification and mailbox moves (docs/sync-rules.md) -----------------------------


def imported_and_exported(mailbox, backend) -> dict[str, int]:
    """A PSA appointment, a contact, an Outlook appointment and a three-day Outlook series,
    synced once; returns title → PSA id of every appointment."""
    make_appointment(mailbox.resource, day(1, "09:00"), title="Visit")
    make_contact(make_account(account_manager=mailbox.resource), last_name="Doe")
    box = mailbox.effective_mailbox
    backend.put(box, event("Dentist", day(2, "15:00")))
    starts = [day(n, "08:00") for n in (1, 2, 3)]
    backend.put_series(box, event("Stand-up", starts[0], hours=0.5), starts)
    assert sync(mailbox, backend).outcome == SyncRun.Outcome.OK
    return appointment_ids()


def appointment_ids() -> dict[str, int]:
    return {f"{a.title} {a.start:%d %H:%M}": a.pk for a in Appointment.objects.order_by("start")}


def test_another_protocols_ids_re_identify_every_imported_item_and_occurrence(tech, backend):
    before = imported_and_exported(tech, backend)
    assert len(before) == 5
    backend.reidentify(tech.effective_mailbox)  # EWS ⇄ Graph: new ids, same UIDs and tags
    MailboxSettings.objects.filter(pk=tech.pk).update(resync_requested_at=clock.now())
    writes = backend.writes()
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert run.counts == {}  # nothing deleted, re-imported or created on either side
    assert backend.writes() == writes
    assert appointment_ids() == before
    current = {i.exchange_id for i in in_exchange(backend, tech)}
    linked = set(ItemLink.objects.values_list("exchange_id", flat=True))
    assert {i.partition("|")[0] for i in linked} <= current
    assert_quiet(tech, backend)


def test_an_organizer_moving_a_series_keeps_the_occurrences_psa_appointments(tech, backend):
    box = tech.effective_mailbox
    starts = [day(n, "08:00") for n in (1, 2, 3)]
    master = backend.put_series(box, event("Stand-up", starts[0], hours=0.5), starts)
    sync(tech, backend)
    ids = set(Appointment.objects.values_list("pk", flat=True))
    backend.move_series(box, master, dt.timedelta(hours=2))  # every occurrence id changes
    run = sync(tech, backend)
    assert run.counts == {"appointment": {"psa": {"updated": 3}}}
    assert set(Appointment.objects.values_list("pk", flat=True)) == ids
    assert sorted(Appointment.objects.values_list("start", flat=True)) == [
        day(n, "10:00") for n in (1, 2, 3)
    ]
    assert_quiet(tech, backend)


NEW_BOX = "tech.new@example.test"


def move_mailbox(mailbox: MailboxSettings, address: str) -> MailboxSettings:
    """An administrator saves another address on the resource's page."""
    settings = MailboxSettings.objects.get(pk=mailbox.pk)
    settings.mailbox = address
    settings.save()
    return settings


def test_a_mailbox_move_takes_the_items_along_and_removes_our_copies_from_the_old_one(
    tech, backend
):
    before = imported_and_exported(tech, backend)
    old = tech.effective_mailbox
    backend.add_mailbox(NEW_BOX)
    backend.copy_items(old, NEW_BOX, tagged=False)  # the user's calendar, migrated
    dentist_copy = next(i for i in backend.items_of(NEW_BOX) if i.record.subject == "Dentist")
    backend.remove(NEW_BOX, dentist_copy.exchange_id)  # not migrated
    moved = move_mailbox(tech, NEW_BOX)
    assert moved.previous_mailbox == old
    run = sync(moved, backend)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {
        "appointment": {"exchange": {"created": 1, "deleted": 1}},
        "contact": {"exchange": {"created": 1, "deleted": 1}},
    }
    assert [i for i in backend.items_of(old) if i.psa_tag] == []  # our copies left
    assert len(backend.items_of(old)) == 2  # the user's own items stay
    tags = [i.psa_tag.key.kind for i in backend.items_of(NEW_BOX) if i.psa_tag]
    assert sorted(tags) == ["appointment", "contact"]
    assert appointment_ids() == before  # nothing deleted in the PSA, nothing imported twice
    dentist = before[next(k for k in before if k.startswith("Dentist"))]
    assert not ItemLink.objects.filter(kind="appointment", psa_id=dentist).exists()  # unlinked
    assert ItemLink.objects.filter(origin="exchange").count() == 3  # the series re-matched
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert settings.previous_mailbox == "" and settings.effective_mailbox == NEW_BOX
    assert_quiet(settings, backend)


def test_a_mailbox_move_adopts_our_tagged_copies_already_in_the_new_mailbox(tech, backend):
    imported_and_exported(tech, backend)
    backend.copy_items(tech.effective_mailbox, NEW_BOX, tagged=True)  # copied with our tags
    moved = move_mailbox(tech, NEW_BOX)
    run = sync(moved, backend)
    assert "created" not in str(run.counts.get("appointment", {}).get("exchange", {}))
    keys = [i.psa_tag.key for i in backend.items_of(NEW_BOX) if i.psa_tag]
    assert len(keys) == len(set(keys)) == 2
    assert not [i for i in backend.items_of(tech.effective_mailbox) if i.psa_tag]
    assert_quiet(MailboxSettings.objects.get(pk=tech.pk), backend)


@pytest.mark.parametrize("crash_after", [0, 1])
def test_a_crash_in_the_middle_of_a_mailbox_move_is_finished_by_the_next_run(tech, crash_after):
    backend = CrashingBackend([tech.effective_mailbox], page_size=2)
    demo(tech)  # six items of ours: three delete calls of two in the old mailbox
    before = imported_and_exported(tech, backend)
    old = tech.effective_mailbox
    backend.add_mailbox(NEW_BOX)
    moved = move_mailbox(tech, NEW_BOX)
    backend.crash_after = crash_after
    with pytest.raises(Crash):
        sync(moved, backend)
    assert MailboxSettings.objects.get(pk=tech.pk).previous_mailbox == old  # still pending
    assert any(i.psa_tag for i in backend.items_of(old))  # some of ours were left behind
    backend.crash_after = None
    run = sync(MailboxSettings.objects.get(pk=tech.pk), backend)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert [i for i in backend.items_of(old) if i.psa_tag] == []
    keys = [i.psa_tag.key for i in backend.items_of(NEW_BOX) if i.psa_tag]
    assert len(keys) == len(set(keys)) == 8
    assert appointment_ids() == {**appointment_ids(), **before}
    assert_quiet(MailboxSettings.objects.get(pk=tech.pk), backend)


def test_a_crash_after_the_links_moved_is_finished_by_the_next_run(tech, backend, monkeypatch):
    imported_and_exported(tech, backend)
    backend.add_mailbox(NEW_BOX)
    moved = move_mailbox(tech, NEW_BOX)
    # Old mailbox, new mailbox (read by the move), then the run's own session: killed there.
    backend.fail_next(Crash("killed"), operations=["open_session"], after=2)
    with pytest.raises(Crash):
        sync(moved, backend)
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert settings.previous_mailbox == "" and not FolderSyncState.objects.exists()
    run = sync(settings, backend)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert len([i for i in backend.items_of(NEW_BOX) if i.psa_tag]) == 2
    assert Appointment.objects.count() == 5


def test_an_unreachable_previous_mailbox_is_reported_and_the_move_goes_on(tech, backend):
    before = imported_and_exported(tech, backend)
    backend.add_mailbox(NEW_BOX)
    backend.remove_mailbox(tech.effective_mailbox)  # the old mailbox was deleted
    run = sync(move_mailbox(tech, NEW_BOX), backend)
    assert run.outcome == SyncRun.Outcome.PARTIAL
    [entry] = SyncLogEntry.objects.filter(run=run)
    assert "could not be opened" in entry.message and tech.effective_mailbox in entry.message
    assert len([i for i in backend.items_of(NEW_BOX) if i.psa_tag]) == 2
    assert appointment_ids() == before  # imports not found again stay in the PSA
    assert not ItemLink.objects.filter(origin="exchange").exists()


def test_an_address_nothing_was_synced_with_is_corrected_without_a_move(tech, backend):
    settings = MailboxSettings.objects.get(pk=tech.pk)
    settings.mailbox = NEW_BOX
    settings.save()
    assert settings.previous_mailbox == ""


def test_the_move_starts_from_the_address_the_items_are_in(tech, backend):
    sync(tech, backend)
    old = tech.effective_mailbox
    assert move_mailbox(tech, NEW_BOX).previous_mailbox == old
    assert move_mailbox(tech, "third@example.test").previous_mailbox == old  # not NEW_BOX
    assert move_mailbox(tech, old).previous_mailbox == ""  # moved back: nothing to move


def test_deletions_held_on_the_old_mailbox_never_apply_after_a_move(tech, backend):
    box = tech.effective_mailbox
    for n in range(30):
        backend.put(box, event(f"Outlook {n}", day(1 + n % 5, f"0{n % 9}:00")))
    sync(tech, backend)
    backend.copy_items(box, NEW_BOX)  # the user's calendar, migrated ...
    for item in in_exchange(backend, tech):
        backend.remove(box, item.exchange_id)  # ... and emptied in the old mailbox
    assert sync(tech, backend).outcome == SyncRun.Outcome.GUARD_TRIPPED  # 30 PSA deletes held
    run = sync(move_mailbox(tech, NEW_BOX), backend)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert Appointment.objects.count() == 30  # found again in the new mailbox, none deleted
    assert ItemLink.objects.filter(origin="exchange").count() == 30
    assert MailboxSettings.objects.get(pk=tech.pk).status == "ok"
    assert_quiet(MailboxSettings.objects.get(pk=tech.pk), backend)
