"""Incremental cycles (docs/performance.md, "Incremental planning"): a quiet cycle costs the same
whatever the mailbox's size, the PSA's audited writes reach Exchange through the cursor, the
cursor never skips an id that may still commit, and a whole plan of a large empty folder runs
in slices that survive a crash between them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange_ext import engine
from exchange_ext.backends.base import FolderKind
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.engine import cycle, scope
from exchange_ext.models import FolderSyncState, ItemLink, MailboxSettings, SyncRun
from psa.audit.models import AuditEntry
from psa.audit.origin import Origin
from psa.scheduling.actions import do_delete_appointment, do_update_appointment
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_appointment
from tests.clock import day
from tests.exchange_ext.pages import enrol
from tests.integration.audit_cursor import settled

pytestmark = pytest.mark.django_db
USER = Origin.by_system("tests")


def sync(mailbox: MailboxSettings, backend: MemoryBackend, **kwargs):
    return engine.run_sync(mailbox.pk, backend=backend, now=kwargs.pop("now", clock.now()))


def filled(name: str, items: int) -> tuple[MailboxSettings, MemoryBackend]:
    """A mailbox with ``items`` exported appointments, synced until quiet."""
    mailbox = enrol(name)
    backend = MemoryBackend([mailbox.effective_mailbox], page_size=50)
    for n in range(items):
        make_appointment(mailbox.resource, day(1 + n % 20, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    settled()
    for _ in range(3):
        sync(mailbox, backend)
    return mailbox, backend


def quiet_queries(mailbox: MailboxSettings, backend: MemoryBackend) -> int:
    with CaptureQueriesContext(connection) as queries:
        run = sync(mailbox, backend)
    assert run.counts == {}
    return len(queries)


def test_a_quiet_cycle_runs_the_same_queries_for_5_items_as_for_300(config):
    small = filled("small", 5)
    large = filled("large", 300)
    settled()
    sync(*small)  # reads the audit entries of the large mailbox's set-up (no-ops here)
    sync(*large)
    assert quiet_queries(*small) == quiet_queries(*large)
    assert ItemLink.objects.filter(mailbox_settings=large[0]).count() == 300


def test_the_first_cycle_after_an_export_reads_none_of_our_own_items_back(config):
    mailbox = enrol("tech")
    backend = MemoryBackend([mailbox.effective_mailbox], page_size=50)
    for n in range(120):
        make_appointment(mailbox.resource, day(1 + n % 10, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    sync(mailbox, backend)  # the export
    backend.content_reads.clear()
    run = sync(mailbox, backend)  # the feed echoes our 120 creates
    assert run.counts == {} and backend.content_reads == []


def test_an_audited_psa_edit_reaches_exchange_at_the_next_cycle_and_only_its_key_is_planned(
    config, monkeypatch
):
    mailbox, backend = filled("tech", 40)
    appointment = Appointment.objects.order_by("pk")[7]
    do_update_appointment(USER, appointment, title="Moved visit")
    settled()
    planned = []
    real = cycle.plan

    def spy(baseline, psa, view, options, now):
        planned.append(set(psa))
        return real(baseline, psa, view, options, now)

    monkeypatch.setattr(cycle, "plan", spy)
    run = sync(mailbox, backend)
    assert run.counts == {"appointment": {"exchange": {"updated": 1}}}
    assert [{key.psa_id for key in keys} for keys in planned] == [{appointment.pk}]
    subjects = {i.record.subject for i in backend.items_of(mailbox.effective_mailbox)}
    assert "Moved visit" in subjects


def test_entries_past_a_young_gap_are_planned_again_until_the_gap_is_old(config, monkeypatch):
    mailbox, backend = filled("tech", 3)
    first, second = Appointment.objects.order_by("pk")[:2]
    do_update_appointment(USER, first, title="Edited once")
    settled()
    sync(mailbox, backend)
    cursor = FolderSyncState.objects.get(mailbox_settings=mailbox, folder="calendar").psa_cursor
    do_update_appointment(USER, second, title="After a gap")
    entry = AuditEntry.objects.order_by("-id").first()
    AuditEntry.objects.filter(pk=entry.pk).update(id=entry.pk + 5)  # 4 ids still "open"
    sync(mailbox, backend)
    assert (
        FolderSyncState.objects.get(mailbox_settings=mailbox, folder="calendar").psa_cursor
        == cursor
    )
    subjects = {i.record.subject for i in backend.items_of(mailbox.effective_mailbox)}
    assert "After a gap" in subjects  # planned although the cursor waits
    settled()
    sync(mailbox, backend)
    assert (
        FolderSyncState.objects.get(mailbox_settings=mailbox, folder="calendar").psa_cursor
        == entry.pk + 5
    )


def test_the_cursor_stops_before_a_young_gap_and_passes_an_old_one(config):
    now = clock.now()
    young, old = now - dt.timedelta(seconds=5), now - scope.GAP_PATIENCE * 2
    entries = [AuditEntry(id=i, at=at) for i, at in ((11, old), (12, old), (14, young))]
    # 13 is missing: a transaction still open may hold it.
    assert scope._advanced(10, entries, now) == 12
    # The same gap, older than the patience: a rolled-back id, passed.
    entries[2].at = old
    assert scope._advanced(10, entries, now) == 14
    # A first entry after a young gap stops the cursor where it is.
    assert scope._advanced(10, [AuditEntry(id=12, at=young)], now) == 10


def test_the_options_fingerprint_is_the_same_in_every_process_and_moves_with_the_options():
    from dataclasses import replace

    from exchange_ext.sync.records import ItemKind, SyncOptions

    options = SyncOptions(
        installation_id="i", export_kinds=frozenset({ItemKind.TODO, ItemKind.APPOINTMENT})
    )
    same = SyncOptions(
        installation_id="i", export_kinds=frozenset({ItemKind.APPOINTMENT, ItemKind.TODO})
    )
    assert scope.fingerprint(options) == scope.fingerprint(same)
    assert scope.fingerprint(options) != scope.fingerprint(replace(options, time_zone="Asia/Tokyo"))


def test_an_export_in_slices_survives_a_crash_between_two_slices(config, monkeypatch):
    monkeypatch.setattr(cycle, "SLICE", 10)
    mailbox = enrol("tech")
    backend = MemoryBackend([mailbox.effective_mailbox], page_size=50)
    for n in range(35):
        make_appointment(mailbox.resource, day(1 + n % 7, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    commits = []
    real = cycle._Cycle.commit

    def crashing(self, folder, chunk, *args, **kwargs):
        done = real(self, folder, chunk, *args, **kwargs)
        commits.append(chunk is None)
        if len(commits) == 2:
            raise RuntimeError("worker killed between two slices")
        return done

    monkeypatch.setattr(cycle._Cycle, "commit", crashing)
    with pytest.raises(RuntimeError):
        sync(mailbox, backend)
    assert commits == [True, True]  # two slices committed, no state stored
    assert ItemLink.objects.count() == 20
    assert not FolderSyncState.objects.filter(state__gt="").exists()
    monkeypatch.setattr(cycle._Cycle, "commit", real)
    sync(mailbox, backend)
    sync(mailbox, backend)
    items = backend.items_of(mailbox.effective_mailbox, FolderKind.CALENDAR)
    assert sorted(i.record.subject for i in items) == sorted(f"V{n}" for n in range(35))
    assert ItemLink.objects.count() == 35


def test_a_psa_deletion_of_an_item_touched_in_outlook_is_carried_out_over_a_pass_of_pages(config):
    """An Outlook touch (a dismissed reminder: a new change key, the same content) and a PSA
    deletion of the same item, then a pass of several pages: the deletion waits for the pass's
    end and is planned again by each later page, which does not list the item. It must go out
    with the version read, not the link's older one — refused as a conflict at every run, the
    feed never listing the item again."""
    mailbox, backend = filled("tech", 6)
    backend.page_size = 2
    box = mailbox.effective_mailbox
    touched = Appointment.objects.get(title="V0")
    exchange_id = ItemLink.objects.get(mailbox_settings=mailbox, psa_id=touched.pk).exchange_id
    backend.bump_change_key(box, exchange_id)  # first in the feed: the pass's first page
    for item in backend.items_of(box)[1:5]:  # and two more pages of Outlook touches
        backend.bump_change_key(box, item.exchange_id)
    do_delete_appointment(USER, touched)
    settled()
    run = sync(mailbox, backend)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert exchange_id not in {item.exchange_id for item in backend.items_of(box)}
    assert not ItemLink.objects.filter(mailbox_settings=mailbox, psa_id=touched.pk).exists()
    assert sync(mailbox, backend).counts == {}
