"""The sync explains itself, in a real browser (issue 15, items 2 and 4; "Done means"):

- a stopped resource and its fix: the administrator tells a mailbox stopped by a permanent
  error from one never enabled on the Resources tab, reads the fix in plain words there and
  on the resource's page (reached through the resource's name); the technician reads the same
  status and fix on their profile MS Exchange tab, which does not scroll sideways at 390 px;
- a conflict as the technician sees it: the profile tab's Conflicts list names the appointment
  by its title (never its internal key), says which change was kept and which was replaced,
  and links the appointment's page; the conflict is not filed under the run's errors.

Everything is placed relative to the pinned test clock (tests/clock.py); the browser waits by
Playwright's auto-waiting, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exchange_ext.backends.base import MailboxNotFound
from exchange_ext.engine.conflict_notes import conflict_message
from exchange_ext.models import ItemLink, MailboxSettings, SyncLogEntry, SyncRun
from exchange_ext.sync import ops as o
from exchange_ext.sync.records import CalendarRecord, FieldGroup, ItemKind, PsaKey, Side
from psa.resources.models import Resource
from tests import clock
from tests.browser.test_exchange_config_browser import demo_config, log_in
from tests.builders import make_appointment, make_resource
from tests.exchange_ext.pages import enable, make_exchange_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The English texts the pages render (exchange_ext/web/status_display.py, the error's hint).
STOPPED = "Stopped"
NOT_ENABLED = "Sync not enabled"
STOPPED_FIX = (
    "Check the mailbox address on the resource's MS Exchange tab. "
    "Then save the resource's MS Exchange settings: the next run tries again."
)
STOPPED_ERROR = "The mailbox was not found on the Exchange server."
PHONE = {"width": 390, "height": 844}
# British English: the product's English with 24-hour times (SPEC §1), whatever the host's
# locale would make Chromium ask for (en-US would switch to the US formats).
LOCALE = "en-GB"
# The page's own width against the window's: more means the page scrolls sideways.
PAGE_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture
def new_page(browser, live_server) -> Iterator[Callable[[], Any]]:
    """Opens a page in a fresh browser context (its own cookies: one login each), in
    ``LOCALE``; the contexts are closed after the test."""
    contexts = []

    def open_page():
        context = browser.new_context(base_url=live_server.url, locale=LOCALE)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def stop(resource: Resource) -> MailboxSettings:
    """``resource``'s mailbox as the runner leaves it after a permanent error (the mailbox
    address is unknown to Exchange): still enabled, status "disabled", the error's kind kept."""
    return enable(
        resource,
        mailbox=f"{resource.user.username}@northwind.example",
        status=MailboxSettings.Status.DISABLED,
        last_error_kind=MailboxNotFound.kind,
        last_error=STOPPED_ERROR,
        last_attempt_at=clock.now() - dt.timedelta(minutes=4),
    )


def squashed(text: str) -> str:
    """``text`` with its runs of white space made one space (as a reader sees it)."""
    return re.sub(r"\s+", " ", text).strip()


def test_a_stopped_resource_shows_its_status_and_fix_to_the_admin_and_the_technician(new_page):
    demo_config()
    make_exchange_admin("admin")
    make_resource("never", first_name="Nora", last_name="Never")
    tech = make_resource("tech1", first_name="Sven", last_name="Stopped")
    stop(tech)

    page = new_page()
    log_in(page, "admin")
    page.goto("/extensions/exchange/resources/")
    stopped_row = page.locator("tbody tr", has=page.get_by_role("link", name="Sven Stopped"))
    never_row = page.locator("tbody tr", has=page.get_by_role("link", name="Nora Never"))
    stopped_badge = stopped_row.locator(".xe-state")
    never_badge = never_row.locator(".xe-state")
    assert squashed(stopped_badge.inner_text()) == f"■ {STOPPED}"
    assert squashed(never_badge.inner_text()) == f"○ {NOT_ENABLED}"
    assert "xe-state-stopped" in stopped_badge.get_attribute("class")
    assert "xe-state-not-enabled" in never_badge.get_attribute("class")
    assert squashed(stopped_row.locator(".xe-fix").inner_text()) == STOPPED_FIX
    assert stopped_row.locator(".xe-fix").is_visible()
    assert STOPPED_ERROR in stopped_row.inner_text()
    assert "Disabled" not in stopped_row.inner_text()  # the old badge that hid the error
    assert STOPPED_FIX not in squashed(never_row.inner_text())

    stopped_row.get_by_role("link", name="Sven Stopped").click()
    page.wait_for_url(f"**/extensions/exchange/resources/{tech.pk}/")
    side = page.locator("aside.xe-side")
    assert squashed(side.locator(".xe-state").inner_text()) == f"■ {STOPPED}"
    head = page.locator(".xe-settings-head .xe-state")
    assert squashed(head.inner_text()) == f"■ {STOPPED}"
    fix = side.locator(".xe-fix-box")
    assert fix.is_visible()
    assert squashed(fix.inner_text()) == f"What to do: {STOPPED_FIX}"
    assert STOPPED_ERROR in side.locator(".xe-error-box").inner_text()
    assert "Sync enabled" not in page.inner_text("main")

    page = new_page()
    log_in(page, "tech1")
    page.set_viewport_size(PHONE)
    page.goto("/profile/exchange/")
    head = page.locator(".xe-settings-head .xe-state")
    assert squashed(head.inner_text()) == f"■ {STOPPED}"
    fix = page.locator(".xe-fix-box")
    fix.scroll_into_view_if_needed()
    assert fix.is_visible()
    assert squashed(fix.inner_text()) == f"What to do: {STOPPED_FIX}"
    scroll_width, window_width = page.evaluate(PAGE_WIDTH)
    assert scroll_width <= window_width, f"scrolls sideways: {scroll_width} > {window_width}"


def hm(value: dt.datetime, zone: str) -> str:
    return value.astimezone(ZoneInfo(zone)).strftime("%H:%M")


def test_the_technician_sees_a_conflict_named_explained_and_linked(new_page):
    demo_config()
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt",
                         email="tech1@northwind.example")  # fmt: skip
    settings = enable(tech, mailbox="tech1@northwind.example", status="ok",
                      last_attempt_at=clock.now(), last_success_at=clock.now())  # fmt: skip
    psa_start, psa_end = clock.day(1, "10:00"), clock.day(1, "11:00")
    outlook_start, outlook_end = clock.day(1, "14:00"), clock.day(1, "15:00")
    appointment = make_appointment(tech, psa_start, title="Visit at Contoso")
    ItemLink.objects.create(mailbox_settings=settings, kind="appointment", origin="psa",
                            psa_id=appointment.pk, exchange_id="AAMkContoso")  # fmt: skip
    key = f"appointment:{appointment.pk}"
    op = o.RecordConflict(
        PsaKey(ItemKind.APPOINTMENT, appointment.pk), frozenset({FieldGroup.TIMES}), Side.PSA,
        "both sides changed times; the origin side wins",
        psa=CalendarRecord(subject="Visit at Contoso", body="", start=psa_start, end=psa_end),
        exchange=CalendarRecord(subject="Visit at Contoso", body="", start=outlook_start,
                                end=outlook_end),
    )  # fmt: skip
    started = clock.now() - dt.timedelta(minutes=3)
    run = SyncRun.objects.create(
        mailbox_settings=settings, started_at=started,
        finished_at=started + dt.timedelta(seconds=6), outcome=SyncRun.Outcome.PARTIAL,
        trigger=SyncRun.Trigger.SCHEDULED, conflicts=1, errors=1,
    )  # fmt: skip
    SyncLogEntry.objects.create(run=run, level=SyncLogEntry.Level.CONFLICT, kind="appointment",
                                psa_key=key, message=conflict_message(op))  # fmt: skip
    # A real error in the same run, so the run's error Details exist and can be read.
    SyncLogEntry.objects.create(run=run, level=SyncLogEntry.Level.ERROR, kind="appointment",
                                psa_key="appointment:999999",
                                message="Exchange refused the item.")  # fmt: skip

    page = new_page()
    log_in(page, "tech1")
    page.goto("/profile/exchange/")
    section = page.locator("section.xe-conflicts-section")
    assert squashed(section.locator("#conflicts-title").inner_text()) == "Conflicts"
    conflict = section.locator("li.xe-conflict")
    assert conflict.count() == 1
    text = squashed(conflict.inner_text())
    zone = tech.time_zone
    dropped = f"time {hm(outlook_start, zone)}–{hm(outlook_end, zone)}"
    kept = f"time {hm(psa_start, zone)}–{hm(psa_end, zone)}"
    assert "Visit at Contoso" in text
    assert (
        f"The change made in Outlook ({dropped}) was replaced by the PSA's ({kept}), "
        "because the item was created in the PSA." in text
    ), text
    main = page.inner_text("main")
    assert key not in main and "origin side" not in main and "side wins" not in main

    # The sync log: the conflict counted and told apart, never under the errors' Details.
    log = page.locator("#sync-log")
    log.locator("details.xe-run-conflicts summary").click()
    assert "Visit at Contoso" in log.locator("details.xe-run-conflicts").inner_text()
    errors = log.locator("details", has=page.locator("summary", has_text="Details"))
    errors.locator("summary").click()
    details = squashed(errors.inner_text())
    assert "Exchange refused the item." in details
    assert "Conflict" not in details and "Visit at Contoso" not in details
    assert "replaced" not in details and key not in details

    link = conflict.get_by_role("link", name="Visit at Contoso")
    assert link.get_attribute("href") == f"/calendar/appointments/{appointment.pk}/"
    link.click()
    page.wait_for_url(f"**/calendar/appointments/{appointment.pk}/")
    assert page.input_value("#id_title") == "Visit at Contoso"
