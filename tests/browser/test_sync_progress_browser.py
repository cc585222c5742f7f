"""Sync now and Test connection answer in place (issue 15, item 1), in a real browser against
the local sandbox (EWS): the technician clicks Sync now on the profile tab and, without the
page reloading, sees the run queued, then — once the worker ran the queued task — what it did;
Test connection shows its result beside the buttons."""

from __future__ import annotations

import pytest

from exchange_ext import tasks
from exchange_ext.models import SyncRun
from tests.browser.test_exchange_config_browser import demo_config, log_in, screenshot
from tests.builders import make_appointment, make_resource
from tests.clock import day
from tests.exchange_ext.pages import enable, running_sandbox

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MARK = "window.__sameDocument"  # set before clicking: a reload would drop it


def test_sync_now_shows_the_runs_progress_in_place(page, tmp_path, monkeypatch):
    address = "tech1@northwind.example"
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt", email=address)
    # Made before the mailbox is enabled: no prompt sync is queued behind the test's back.
    make_appointment(tech, day(1, "09:00"), title="Site visit")
    with running_sandbox(tmp_path, monkeypatch) as sandbox:
        demo_config(server_address=f"localhost:{sandbox.port}")
        mailbox = enable(tech, mailbox=address)
        log_in(page, "tech1")
        page.goto("/profile/exchange/")
        progress = page.locator("#sync-progress")
        assert progress.get_attribute("data-stage") == "idle"
        page.evaluate(f"{MARK} = true")

        page.click("#sync-now")
        page.locator("#sync-progress[data-stage=queued]").wait_for()
        assert "waiting for a worker" in progress.inner_text()

        tasks.sync_mailbox(mailbox.pk, SyncRun.Trigger.SYNC_NOW)  # what the worker does
        page.locator("#sync-progress[data-stage=done]").wait_for(timeout=15_000)
        text = progress.inner_text()
        assert "OK" in text and "In Exchange: 1 created" in text, text
        assert page.evaluate(MARK) is True, "the page reloaded"
        assert progress.get_attribute("hx-trigger") is None  # polling stopped
        assert "1 created" in page.inner_text("#sync-log")  # the log followed, in place
        screenshot(page, "sync-progress.png")

        page.click("#test-connection")
        page.locator("#connection-result p").wait_for()
        assert "Connection test passed" in page.inner_text("#connection-result")
        assert page.evaluate(MARK) is True, "the page reloaded"
        assert sandbox.state.store.backdoor_list(address, "calendar")


def test_without_javascript_sync_now_reloads_with_the_same_status_block(
    browser, live_server, tmp_path
):
    tech = make_resource("tech1", email="tech1@northwind.example")
    enable(tech, mailbox="tech1@northwind.example")
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, "tech1")
        page.goto("/profile/exchange/")
        page.click("#sync-now")
        page.wait_for_url("**/profile/exchange/")
        assert "Sync requested; it will start within a minute." in page.inner_text("main")
        assert page.locator("#sync-progress").get_attribute("data-stage") == "queued"
    finally:
        context.close()
