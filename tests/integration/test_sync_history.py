"""Per-item sync history (issue 15, item 5): each run keeps the items it touched, its page lists
them, and each PSA item's page shows its sync state per mailbox and the runs that touched it —
to administrators and to the technician owning the mailbox, to nobody else."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange_ext import engine
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.engine import runs
from exchange_ext.models import MailboxSettings, SyncRun, SyncRunItem
from psa.audit.origin import Origin
from psa.scheduling.actions import do_delete_appointment, do_update_appointment
from tests import clock
from tests.builders import (
    make_account,
    make_appointment,
    make_contact,
    make_resource,
)
from tests.clock import day
from tests.exchange_ext.pages import client_for, enrol, make_exchange_admin

pytestmark = pytest.mark.django_db
USER = Origin.by_system("tests")


@pytest.fixture
def tech(config) -> MailboxSettings:
    return enrol("tech")


@pytest.fixture
def backend(tech) -> MemoryBackend:
    return MemoryBackend([tech.effective_mailbox], page_size=50)


def sync(mailbox: MailboxSettings, backend: MemoryBackend) -> SyncRun:
    return engine.run_sync(mailbox.pk, backend=backend, now=clock.now())


def items_of(run: SyncRun) -> list[tuple[str, str, str, str]]:
    rows = run.items.order_by("title").values_list("kind", "side", "action", "title")
    return list(rows)


# ---- what a run records -----------------------------------------------------------------------


def test_an_export_records_each_item_it_wrote_with_its_title(tech, backend):
    make_appointment(tech.resource, title="Boiler check")
    make_appointment(tech.resource, day(2, "10:00"), title="Audit")
    run = sync(tech, backend)
    assert items_of(run) == [
        ("appointment", "exchange", "created", "Audit"),
        ("appointment", "exchange", "created", "Boiler check"),
    ]
    assert run.items_omitted == 0
    assert sync(tech, backend).items.count() == 0  # a quiet run touches nothing


def test_updates_and_deletes_are_recorded_with_what_changed_and_the_deleted_items_title(
    tech, backend
):
    moved = make_appointment(tech.resource, title="Moved visit")
    gone = make_appointment(tech.resource, day(2, "10:00"), title="Cancelled visit")
    for n in range(10):  # one deletion among a dozen stays under the mass-delete guard
        make_appointment(tech.resource, day(3 + n, "12:00"), title=f"Other {n}")
    sync(tech, backend)
    do_update_appointment(USER, moved, start=day(3, "09:00"), end=day(3, "10:00"))
    do_delete_appointment(USER, gone)
    run = sync(tech, backend)
    rows = {item.title: item for item in run.items.all()}
    assert rows["Moved visit"].action == "updated" and rows["Moved visit"].side == "exchange"
    assert "times" in rows["Moved visit"].detail
    assert rows["Cancelled visit"].action == "deleted"  # titled although the PSA item is gone


def test_an_item_exchange_refuses_is_recorded_as_failed_with_the_reason(tech, config):
    backend = MemoryBackend(
        [tech.effective_mailbox], reject_if=lambda r: "too big" if "Bad" in r.subject else None
    )
    bad = make_appointment(tech.resource, title="Bad one")
    run = sync(tech, backend)
    item = run.items.get()
    assert (item.psa_id, item.action, item.side) == (bad.pk, "failed", "exchange")
    assert "too big" in item.detail


def test_a_run_keeps_at_most_its_cap_of_items_and_counts_the_rest(tech, backend, monkeypatch):
    monkeypatch.setattr(runs, "ITEMS_PER_RUN", 5)
    for n in range(8):
        make_appointment(tech.resource, day(1 + n, "09:00"), title=f"Visit {n}")
    run = sync(tech, backend)
    assert run.items.count() == 5
    assert run.items_omitted == 3
    page = client_for(make_exchange_admin()).get(f"/extensions/exchange/runs/{run.pk}/")
    assert "… and 3 more items" in page.content.decode()


def test_a_rolled_back_page_leaves_no_items(tech):
    run = runs.start_run(tech, trigger="manual", backend="memory")
    log = runs.RunLog(run)
    log._item("appointment", 1, "exchange", "created", "Lost", "")
    log.discard()
    log.flush()
    assert SyncRunItem.objects.count() == 0 and log.stored_items == 0


def test_items_go_with_their_run_when_old_runs_are_pruned(tech, backend):
    make_appointment(tech.resource, title="Boiler check")
    first = sync(tech, backend)
    make_appointment(tech.resource, day(2, "09:00"), title="Second")
    sync(tech, backend)
    runs.prune_runs(tech.pk, keep=1)
    assert not SyncRunItem.objects.filter(run_id=first.pk).exists()
    assert SyncRunItem.objects.get().title == "Second"


def item_queries(tech: MailboxSettings, backend: MemoryBackend, count: int) -> tuple[int, int]:
    """(queries writing run items, all queries) of an export of ``count`` appointments."""
    for n in range(count):
        make_appointment(tech.resource, day(1 + n % 20, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    with CaptureQueriesContext(connection) as queries:
        run = sync(tech, backend)
    assert run.items.count() == count
    writes = [q for q in queries if "exchange_ext_syncrunitem" in q["sql"]]
    return len(writes), len(queries)


def test_recording_items_costs_the_same_queries_for_10_items_as_for_100(config):
    small = enrol("small")
    large = enrol("large")
    small_backend = MemoryBackend([small.effective_mailbox], page_size=500)
    large_backend = MemoryBackend([large.effective_mailbox], page_size=500)
    small_writes, small_total = item_queries(small, small_backend, 10)
    large_writes, large_total = item_queries(large, large_backend, 100)
    assert small_writes == large_writes == 1  # one bulk insert with the page's commit
    assert large_total == small_total


# ---- the run's page ------------------------------------------------------------------------------


@pytest.fixture
def exported(tech, backend) -> tuple[SyncRun, object]:
    appointment = make_appointment(tech.resource, title="Boiler check")
    gone = make_appointment(tech.resource, day(2, "09:00"), title="Short-lived")
    run = sync(tech, backend)
    do_delete_appointment(USER, gone)  # its row stays in the run, without a link
    return run, appointment


def test_the_admin_run_page_lists_the_items_linked_to_their_pages(exported):
    run, appointment = exported
    page = client_for(make_exchange_admin()).get(f"/extensions/exchange/runs/{run.pk}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert f'href="/calendar/appointments/{appointment.pk}/">Boiler check</a>' in text
    assert "Short-lived" in text and "Short-lived</a>" not in text
    assert "Created" in text and "Exchange" in text


def test_the_technician_sees_their_own_run_on_the_profile_and_nobody_elses(exported, tech):
    run, _ = exported
    own = client_for(tech.resource).get(f"/profile/exchange/runs/{run.pk}/")
    assert own.status_code == 200 and "Boiler check" in own.content.decode()
    other = client_for(make_resource("other"))
    assert other.get(f"/profile/exchange/runs/{run.pk}/").status_code == 404
    assert other.get(f"/extensions/exchange/runs/{run.pk}/").status_code == 403
    assert client_for(tech.resource).get("/profile/exchange/runs/999999/").status_code == 404


def test_the_run_log_links_each_run_to_its_page(exported, tech):
    run, _ = exported
    profile = client_for(tech.resource).get("/profile/exchange/").content.decode()
    assert f'href="/profile/exchange/runs/{run.pk}/"' in profile
    admin = client_for(make_exchange_admin())
    page = admin.get(f"/extensions/exchange/resources/{tech.resource_id}/").content.decode()
    assert f'href="/extensions/exchange/runs/{run.pk}/"' in page
    status = admin.get("/extensions/exchange/status/").content.decode()
    assert f'href="/extensions/exchange/runs/{run.pk}/"' in status


def test_a_public_folder_run_has_a_page_for_administrators_only(tech):
    run = runs.start_run(None, trigger="scheduled", backend="ews")
    page = client_for(make_exchange_admin()).get(f"/extensions/exchange/runs/{run.pk}/")
    assert page.status_code == 200 and "Public contacts folder" in page.content.decode()
    assert 'href="/extensions/exchange/status/"' in page.content.decode()
    assert client_for(tech.resource).get(f"/profile/exchange/runs/{run.pk}/").status_code == 404


# ---- an item's page ------------------------------------------------------------------------------


def test_an_appointment_page_shows_its_sync_state_and_the_run_that_wrote_it(exported, tech):
    run, appointment = exported
    text = client_for(tech.resource).get(f"/calendar/appointments/{appointment.pk}/").content
    text = text.decode()
    assert "MS Exchange sync" in text and "Synced" in text
    assert f'href="/profile/exchange/runs/{run.pk}/"' in text
    admin = client_for(make_exchange_admin())
    text = admin.get(f"/calendar/appointments/{appointment.pk}/")
    # An admin without the dispatcher's right cannot open the appointment (403) at all.
    assert text.status_code == 403


def test_an_item_changed_since_its_last_sync_reads_as_pending(exported, tech):
    _, appointment = exported
    do_update_appointment(USER, appointment, title="Boiler check (moved)")
    text = client_for(tech.resource).get(f"/calendar/appointments/{appointment.pk}/").content
    assert "Changed since, waiting" in text.decode()


def test_an_item_that_failed_reads_as_an_error_with_the_reason(tech, config):
    backend = MemoryBackend(
        [tech.effective_mailbox], reject_if=lambda r: "too big" if "Bad" in r.subject else None
    )
    bad = make_appointment(tech.resource, title="Bad one")
    sync(tech, backend)
    text = client_for(tech.resource).get(f"/calendar/appointments/{bad.pk}/").content.decode()
    assert "Error" in text and "too big" in text


def test_a_contacts_sync_shows_to_its_technician_and_admins_never_to_a_colleague(tech, backend):
    account = make_account(account_manager=tech.resource)
    contact = make_contact(account=account, first_name="Robin", last_name="Reyes")
    run = sync(tech, backend)
    assert ("contact", "exchange", "created", "Robin Reyes") in items_of(run)
    url = f"/crm/contacts/{contact.pk}/"
    own = client_for(tech.resource).get(url).content.decode()
    assert "MS Exchange sync" in own and tech.effective_mailbox in own
    admin = client_for(make_exchange_admin()).get(url).content.decode()
    assert "MS Exchange sync" in admin and f'href="/extensions/exchange/runs/{run.pk}/"' in admin
    colleague = client_for(make_resource("other")).get(url).content.decode()
    assert "MS Exchange sync" not in colleague and tech.effective_mailbox not in colleague


def test_an_item_never_synced_shows_no_panel(tech):
    appointment = make_appointment(tech.resource, title="Local only")
    text = client_for(tech.resource).get(f"/calendar/appointments/{appointment.pk}/").content
    assert "MS Exchange sync" not in text.decode()
