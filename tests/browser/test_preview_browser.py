"""Preview next sync in a real browser (SPEC §3.3): an administrator clicks the button on a
resource's page and sees, per side, what the next run would create, update and delete. The
preview itself is tested in tests/integration/test_preview.py (memory backend) and
tests/integration/sync_rules/test_preview.py (the sandbox over EWS and Graph).

With ``UPDATE_SCREENSHOTS=1`` it refreshes docs/screenshots/preview.png."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext import engine
from exchange_ext.backends import factory
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.models import ItemLink, SyncRun
from exchange_ext.sync.records import CalendarRecord
from psa.audit.origin import Origin
from psa.scheduling.actions import do_delete_appointment
from tests import clock
from tests.browser.test_exchange_config_browser import log_in, screenshot
from tests.builders import make_appointment, make_resource
from tests.clock import day
from tests.exchange_ext.pages import enable, make_exchange_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_previews_the_next_sync_and_nothing_changes(page, monkeypatch):
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    settings = enable(tech, mailbox=tech.email)
    backend = MemoryBackend([settings.effective_mailbox])
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    visits = [make_appointment(tech, day(1 + n, "09:00"), title=f"Visit {n}") for n in range(3)]
    assert engine.run_sync(settings.pk, now=clock.now()).outcome == SyncRun.Outcome.OK
    do_delete_appointment(Origin.by_system("tests"), visits[0])
    make_appointment(tech, day(2, "14:00"), title="Server migration")
    begin = day(3, "15:00")
    backend.put(settings.effective_mailbox,
                CalendarRecord("Dentist", "", begin, begin + dt.timedelta(hours=1)))  # fmt: skip
    links, runs = list(ItemLink.objects.values()), SyncRun.objects.count()
    make_exchange_admin("xadmin")
    log_in(page, "xadmin")
    page.goto(f"/extensions/exchange/resources/{tech.pk}/")
    page.get_by_role("button", name="Preview next sync", exact=True).click()
    page.wait_for_load_state()
    counts = page.locator("#preview-counts")
    assert counts.locator('[data-side="exchange"][data-action="created"]').inner_text() == "1"
    assert counts.locator('[data-side="exchange"][data-action="deleted"]').inner_text() == "1"
    assert counts.locator('[data-side="psa"][data-action="created"]').inner_text() == "1"
    assert "Server migration" in page.locator("#preview-exchange-created").inner_text()
    assert "Dentist" in page.locator("#preview-psa-created").inner_text()
    screenshot(page, "preview.png")
    assert (list(ItemLink.objects.values()), SyncRun.objects.count()) == (links, runs)
    assert backend.writes() == 3  # the first run's creates only
