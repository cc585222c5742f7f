"""A run's items and an item's sync history in a real browser (issue 15, item 5): the technician
goes from their resource's sync log to a run's page, then to one of its items, whose page shows
its sync state and the run that wrote it. With ``UPDATE_SCREENSHOTS=1`` the run's page refreshes
docs/screenshots/run-items.png."""

from __future__ import annotations

import pytest

from exchange_ext import engine
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.models import ExchangeConfig
from tests import clock
from tests.browser.test_exchange_config_browser import log_in, screenshot
from tests.builders import make_appointment, make_resource
from tests.clock import day
from tests.exchange_ext.pages import enable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_from_the_sync_log_to_a_run_and_to_an_items_history(page):
    ExchangeConfig.load()
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    mailbox = enable(tech, mailbox=tech.email)
    titles = ["Boiler check", "Server room audit", "Printer install", "Backup review"]
    for n, title in enumerate(titles):
        make_appointment(tech, day(1 + n, "09:00"), title=title)
    backend = MemoryBackend([mailbox.effective_mailbox])
    run = engine.run_sync(mailbox.pk, backend=backend, now=clock.now())
    assert run.items.count() == len(titles)

    log_in(page, "tech1")
    page.goto("/profile/exchange/")
    page.locator(f'a[href="/profile/exchange/runs/{run.pk}/"]').click()
    page.wait_for_url(f"**/profile/exchange/runs/{run.pk}/")
    table = page.locator("table.xe-run-items")
    for title in titles:
        assert title in table.inner_text()
    assert "Created" in table.inner_text()
    screenshot(page, "run-items.png")

    table.get_by_role("link", name="Boiler check").click()
    page.wait_for_url("**/calendar/appointments/*/")
    panel = page.locator("section.xe-item-sync")
    assert "Synced" in panel.inner_text()
    assert tech.email in panel.inner_text()
    panel.locator(f'a[href="/profile/exchange/runs/{run.pk}/"]').click()
    page.wait_for_url(f"**/profile/exchange/runs/{run.pk}/")
