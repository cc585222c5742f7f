"""Remove synced items in a real browser, against the local sandbox (EWS): the administrator
opens a resource's page, clicks Remove synced items, sees the counts per item type, confirms,
and — once the worker ran the queued task — sees the result on the page and in its sync log."""

from __future__ import annotations

import pytest
from django_q.models import OrmQ

from exchange_ext import engine, tasks
from exchange_ext.jobs.removals import REMOVAL_TASK
from exchange_ext.models import MailboxSettings, SyncRun
from tests import clock
from tests.browser.test_exchange_config_browser import demo_config, log_in, screenshot
from tests.builders import make_appointment, make_resource, make_todo
from tests.clock import day
from tests.exchange_ext.pages import enable, make_exchange_admin, running_sandbox

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_removes_a_resources_synced_items_and_sees_the_result(page, tmp_path, monkeypatch):
    make_exchange_admin("admin")
    address = "tech1@northwind.example"
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt", email=address)
    with running_sandbox(tmp_path, monkeypatch) as sandbox:
        demo_config(server_address=f"localhost:{sandbox.port}")
        mailbox = enable(tech, mailbox=address)
        make_appointment(tech, day(1, "09:00"), title="Site visit")
        make_appointment(tech, day(2, "10:00"), title="Workshop")
        make_todo(tech, day(1, "14:00"), description="Call back")
        run = engine.run_sync(mailbox.pk, now=clock.now())
        assert run.counts == {
            "appointment": {"exchange": {"created": 2}},
            "todo": {"exchange": {"created": 1}},
        }, run.error

        log_in(page, "admin")
        page.goto(f"/extensions/exchange/resources/{tech.pk}/")
        page.click("#remove-synced-items")
        page.wait_for_url(f"**/resources/{tech.pk}/remove/")
        assert page.inner_text("td[data-kind=appointment]") == "2"
        assert page.inner_text("td[data-kind=todo]") == "1"
        assert page.inner_text("td[data-kind=contact]") == "0"
        assert page.is_checked("#id_kinds_appointment") and page.is_checked("#id_kinds_todo")
        screenshot(page, "remove_synced_items.png")
        page.click("button:has-text('Remove synced items')")
        page.wait_for_url(f"**/resources/{tech.pk}/")
        page.get_by_text("Removal of synced items queued").wait_for()
        assert page.get_by_text("3 items to delete").is_visible()

        # (The PSA edits above queued a prompt sync too; no worker runs in this test.)
        assert REMOVAL_TASK in [task.func() for task in OrmQ.objects.all()]
        tasks.remove_synced_items(mailbox.pk)  # what the worker does with the queued task
        page.reload()
        result = page.locator("#removal-result")
        assert "3 items deleted from the mailbox." in result.inner_text()
        assert page.get_by_text("Remove synced items: OK").is_visible()
        assert page.get_by_text("Sync not enabled").first.is_visible()
        screenshot(page, "remove_synced_items_done.png")
        assert sandbox.state.store.backdoor_list(address, "calendar") == []
    assert not MailboxSettings.objects.get(pk=mailbox.pk).sync_enabled
    assert SyncRun.objects.filter(trigger=SyncRun.Trigger.REMOVAL).get().outcome == "ok"
