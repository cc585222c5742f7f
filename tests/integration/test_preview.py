"""Preview next sync (SPEC §3.3) over the ORM and a MemoryBackend: the preview lists the ops the
next run performs, and writes nothing anywhere (links, sync states, cursors, runs, the lease,
the mailbox)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from exchange_ext import engine
from exchange_ext.backends import factory
from exchange_ext.backends.base import AuthFailed, FolderKind, Unavailable
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.engine import leases
from exchange_ext.engine.preview import Preview, PreviewRefused, preview_sync
from exchange_ext.models import (
    ExchangeConfig,
    FolderSyncState,
    FullReadSeen,
    HeldDeletion,
    ItemLink,
    MailboxSettings,
    SyncLogEntry,
    SyncRun,
)
from exchange_ext.sync.records import CalendarRecord
from psa.audit.models import AuditEntry
from psa.audit.origin import Origin
from psa.scheduling.actions import do_delete_appointment, do_update_appointment
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import (
    make_admin,
    make_appointment,
    make_contact,
    make_resource,
    make_todo,
)
from tests.clock import day

pytestmark = pytest.mark.django_db

USER = Origin.by_system("tests")


@pytest.fixture
def tech(config: ExchangeConfig) -> MailboxSettings:
    resource = make_resource("tech")
    return MailboxSettings.objects.create(
        resource=resource, sync_enabled=True, mailbox=resource.email, export_contacts=True
    )


@pytest.fixture
def backend(tech: MailboxSettings) -> MemoryBackend:
    return MemoryBackend([tech.effective_mailbox], page_size=3)


def sync(mailbox: MailboxSettings, backend: MemoryBackend) -> SyncRun:
    return engine.run_sync(mailbox.pk, backend=backend, now=clock.now())


def preview(mailbox: MailboxSettings, backend: MemoryBackend, **kwargs: Any) -> Preview:
    return preview_sync(mailbox.pk, backend=backend, now=clock.now(), **kwargs)


def event(subject: str, begin: dt.datetime, hours: float = 1) -> CalendarRecord:
    return CalendarRecord(subject, "", begin, begin + dt.timedelta(hours=hours))


def run_totals(run: SyncRun) -> dict[str, dict[str, int]]:
    """A run's counts summed over kinds, in the preview's shape."""
    totals = {
        side: dict.fromkeys(("created", "updated", "deleted"), 0) for side in ("psa", "exchange")
    }
    for sides in run.counts.values():
        for side, actions in sides.items():
            for action, count in actions.items():
                totals[side][action] += count
    return totals


def snapshot(mailbox: MailboxSettings, backend: MemoryBackend) -> dict[str, Any]:
    """Everything a preview must leave as it was, to the byte."""
    rows = MailboxSettings.objects.filter(pk=mailbox.pk).values()
    return {
        "mailbox": list(rows),
        "links": list(ItemLink.objects.order_by("pk").values()),
        "states": list(FolderSyncState.objects.order_by("pk").values()),
        "seen": list(FullReadSeen.objects.order_by("pk").values()),
        "held": list(HeldDeletion.objects.order_by("pk").values()),
        "runs": SyncRun.objects.count(),
        "log": SyncLogEntry.objects.count(),
        "audit": AuditEntry.objects.count(),
        "appointments": list(Appointment.objects.order_by("pk").values()),
        "exchange": sorted(
            (item.exchange_id, item.change_key, repr(item.record))
            for item in backend.items_of(mailbox.effective_mailbox)
        ),
        "exchange_writes": backend.writes(),
    }


def a_busy_day(tech: MailboxSettings, backend: MemoryBackend) -> None:
    """Synced items, then a change of every kind on both sides."""
    kept = make_appointment(tech.resource, day(1, "09:00"), title="Kept")
    edited = make_appointment(tech.resource, day(1, "11:00"), title="Edited")
    gone = make_appointment(tech.resource, day(2, "09:00"), title="Gone")
    # (A to-do: its times flow back. An appointment's update from Exchange fails at HEAD on a
    # psa_store name clash, _APPOINTMENT_FIELDS defined twice; reported, not this item's.)
    make_todo(tech.resource, day(2, "11:00"), description="Moved in Outlook")
    for n in range(6):
        make_appointment(tech.resource, day(3, f"{8 + n:02d}:00"), title=f"Visit {n}")
    make_contact(first_name="Ada", last_name="Lovelace")
    box = tech.effective_mailbox
    backend.put(box, event("Dentist", day(4, "15:00")))
    sync(tech, backend)
    do_update_appointment(USER, edited, location="Room 2")
    do_delete_appointment(USER, gone)
    make_appointment(tech.resource, day(5, "10:00"), title="New in the PSA")
    moved = next(i for i in backend.items_of(box) if i.record.start == day(2, "11:00"))
    backend.edit(
        box, moved.exchange_id, replace(moved.record, start=day(2, "14:00"), end=day(2, "14:30"))
    )
    backend.put(box, event("Board meeting", day(4, "10:00")))
    assert kept.pk


# --- the preview is the next run ----------------------------------------------------------


def test_a_preview_lists_exactly_what_the_next_run_does_on_each_side(tech, backend):
    a_busy_day(tech, backend)
    before = snapshot(tech, backend)
    shown = preview(tech, backend)
    assert snapshot(tech, backend) == before
    assert shown.complete and not shown.held.count
    assert shown.counts() == {
        "psa": {"created": 1, "updated": 1, "deleted": 0},
        "exchange": {"created": 1, "updated": 1, "deleted": 1},
    }
    assert [i.title for i in shown.group("exchange", "created").items] == ["New in the PSA"]
    assert [i.title for i in shown.group("psa", "created").items] == ["Board meeting"]
    assert shown.group("psa", "updated").items[0].when == day(2, "14:00")
    assert all(i.reason for g in shown.groups for i in g.items)
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert run_totals(run) == shown.counts()
    # Once run, nothing is left to do: the next preview is empty.
    assert preview(tech, backend).total == 0


def test_a_first_preview_shows_the_whole_first_sync_and_stores_no_state(tech, backend):
    for n in range(7):
        make_appointment(tech.resource, day(1 + n % 3, f"{9 + n:02d}:00"), title=f"Visit {n}")
    backend.put(tech.effective_mailbox, event("Dentist", day(2, "07:00")))
    before = snapshot(tech, backend)
    shown = preview(tech, backend)
    assert snapshot(tech, backend) == before
    assert not FolderSyncState.objects.exists()
    assert shown.group("exchange", "created").count == 7
    assert shown.group("psa", "created").count == 1
    assert run_totals(sync(tech, backend)) == shown.counts()


def test_the_listed_items_are_capped_but_the_counts_are_not(tech, backend):
    for n in range(12):
        make_appointment(tech.resource, day(1 + n % 4, f"{8 + n:02d}:00"), title=f"Visit {n}")
    shown = preview(tech, backend, max_listed=5)
    created = shown.group("exchange", "created")
    assert (created.count, len(created.items)) == (12, 5)


def test_a_mass_delete_in_the_psa_shows_as_held_by_the_guard_as_the_run_holds_it(tech, backend):
    appointments = [
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"Visit {n}")
        for n in range(30)
    ]
    sync(tech, backend)
    for appointment in appointments[:25]:
        do_delete_appointment(USER, appointment)
    before = snapshot(tech, backend)
    shown = preview(tech, backend)
    assert snapshot(tech, backend) == before
    assert shown.held.count == 25
    assert shown.group("exchange", "deleted").count == 0
    run = sync(tech, backend)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert run_totals(run) == shown.counts()
    assert HeldDeletion.objects.filter(state=HeldDeletion.State.HELD).count() == shown.held.count


# --- the preview writes nothing, even when it fails -----------------------------------------


def test_a_preview_after_steady_runs_keeps_states_cursors_and_links_byte_for_byte(tech, backend):
    a_busy_day(tech, backend)
    sync(tech, backend)
    make_appointment(tech.resource, day(6, "10:00"), title="Later")
    before = snapshot(tech, backend)
    assert before["states"]
    for _ in range(2):
        preview(tech, backend)
    assert snapshot(tech, backend) == before
    assert run_totals(sync(tech, backend))["exchange"]["created"] == 1


@pytest.mark.parametrize("operation", ["open_session", "read_changes", "read_window"])
def test_a_backend_failure_shows_the_runs_plain_words_and_changes_nothing(tech, backend, operation):
    a_busy_day(tech, backend)
    before = snapshot(tech, backend)
    backend.fail_next(AuthFailed("401 Unauthorized"), operations=[operation])
    shown = preview(tech, backend)
    assert shown.error.startswith(str(AuthFailed.plain))
    assert shown.hint == str(AuthFailed.hint)
    assert shown.total == 0 and not shown.complete
    assert snapshot(tech, backend) == before


def test_a_failure_on_a_later_page_changes_nothing_either(tech, backend):
    a_busy_day(tech, backend)
    before = snapshot(tech, backend)
    backend.fail_next(Unavailable("truncated envelope"), operations=["read_changes"], after=1)
    shown = preview(tech, backend)
    assert "truncated envelope" in shown.error
    assert snapshot(tech, backend) == before


def test_a_preview_out_of_time_plans_no_folder_it_did_not_read_in_full(tech, backend):
    a_busy_day(tech, backend)
    before = snapshot(tech, backend)
    shown = preview(tech, backend, budget_seconds=0)
    assert shown.unread == [FolderKind.CALENDAR, FolderKind.CONTACTS]
    assert shown.total == 0 and not shown.complete
    assert snapshot(tech, backend) == before


def test_a_preview_during_a_running_sync_is_refused_and_takes_no_lease(tech, backend):
    token = leases.claim(tech.pk, 60)
    assert token is not None
    before = snapshot(tech, backend)
    with pytest.raises(PreviewRefused, match="running now"):
        preview(tech, backend)
    assert snapshot(tech, backend) == before
    leases.release(tech.pk, token)
    preview(tech, backend)
    # A run may start right after a preview: it left no lease held.
    assert leases.claim(tech.pk, 60) == token + 1


def test_a_resource_whose_sync_is_off_or_stopped_cannot_be_previewed(tech, backend, config):
    MailboxSettings.objects.filter(pk=tech.pk).update(status=MailboxSettings.Status.DISABLED)
    with pytest.raises(PreviewRefused):
        preview(tech, backend)
    MailboxSettings.objects.filter(pk=tech.pk).update(
        status=MailboxSettings.Status.OK, sync_enabled=False
    )
    with pytest.raises(PreviewRefused, match="not enabled"):
        preview(tech, backend)
    config.enabled = False
    config.save()
    MailboxSettings.objects.filter(pk=tech.pk).update(sync_enabled=True)
    with pytest.raises(PreviewRefused, match="turned off"):
        preview(tech, backend)


# --- the page --------------------------------------------------------------------------------


@pytest.fixture
def memory_factory(backend, monkeypatch) -> MemoryBackend:
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    return backend


def url(mailbox: MailboxSettings) -> str:
    return reverse("exchange_ext:preview_next_sync", args=[mailbox.resource_id])


def logged_in(resource) -> Client:
    client = Client()
    client.force_login(resource.user)
    return client


def test_the_resource_page_offers_preview_and_the_preview_page_lists_the_groups(
    tech, memory_factory
):
    a_busy_day(tech, memory_factory)
    admin = logged_in(make_admin())
    page = admin.get(reverse("exchange_ext:resource_settings", args=[tech.resource_id]))
    assert url(tech).encode() in page.content and b"Preview next sync" in page.content
    before = snapshot(tech, memory_factory)
    response = admin.post(url(tech))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-side="exchange" data-action="created">1<' in html
    assert 'data-side="psa" data-action="created">1<' in html
    assert "New in the PSA" in html and "Board meeting" in html
    assert 'id="preview-exchange-deleted"' in html
    assert snapshot(tech, memory_factory) == before


def test_the_preview_page_shows_a_backend_error_in_plain_words(tech, memory_factory):
    memory_factory.fail_next(AuthFailed("401"), operations=["open_session"])
    admin = logged_in(make_admin())
    before = snapshot(tech, memory_factory)
    response = admin.post(url(tech))
    assert response.status_code == 200  # the page answers; the error is the preview's
    assert 'id="preview-error"' in response.content.decode()
    assert str(AuthFailed.plain) in response.content.decode()
    assert snapshot(tech, memory_factory) == before


def test_the_preview_page_refuses_while_a_sync_runs(tech, memory_factory):
    leases.claim(tech.pk, 60)
    response = logged_in(make_admin()).post(url(tech))
    assert response.status_code == 409
    assert "A sync of this mailbox is running now" in response.content.decode()


def test_a_technician_cannot_preview_not_even_their_own_mailbox(tech, memory_factory):
    response = logged_in(tech.resource).post(url(tech))
    assert response.status_code == 403
    assert memory_factory.calls == [] or all(
        name != "read_changes" for name, _ in memory_factory.calls
    )
    own = logged_in(tech.resource).get(reverse("exchange_ext_profile:profile_exchange"))
    assert b"Preview next sync" not in own.content


def test_a_preview_is_a_post_with_csrf(tech, memory_factory):
    admin = make_admin()
    assert logged_in(admin).get(url(tech)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin.user)
    assert strict.post(url(tech)).status_code == 403


def test_the_preview_page_lists_the_first_items_of_a_long_group_and_says_so(tech, memory_factory):
    for n in range(25):
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"Visit {n}")
    html = logged_in(make_admin()).post(url(tech)).content.decode()
    assert 'data-side="exchange" data-action="created">25<' in html
    assert "Showing the first 20 of 25." in html
    assert html.count("new in the PSA") == 20
