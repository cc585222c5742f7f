"""The Status tab's runs-per-hour chart in a real browser (issue 15, item 7): the SVG draws its
bars at 1280 and 390 px without pushing the page sideways, its day labels stay inside it, and
the heartbeat warning shows when queued work waits for a stopped worker.

With ``UPDATE_SCREENSHOTS=1`` the 1280 px page refreshes docs/screenshots/status-health.png.
"""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext.models import MailboxSettings, SyncRun
from tests import clock
from tests.browser.test_exchange_config_browser import demo_config, log_in, screenshot
from tests.builders import make_admin, make_resource
from tests.exchange_ext.pages import enable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
Outcome = SyncRun.Outcome

# Geometry of the chart as the browser laid it out.
CHART = """() => {
  const svg = document.querySelector("svg.xe-chart-svg");
  const box = svg.getBoundingClientRect();
  const bars = [...svg.querySelectorAll("rect.xe-bar")].map((r) => r.getBoundingClientRect())
    .filter((r) => r.width > 0 && r.height > 0);
  const labels = [...document.querySelectorAll(".xe-chart-daylabel")]
    .map((l) => l.getBoundingClientRect());
  return {left: box.left, right: box.right, width: box.width, height: box.height,
    hours: svg.querySelectorAll("g.xe-chart-hour").length, bars: bars.length,
    outside: bars.filter((r) => r.left < box.left - 1 || r.right > box.right + 1).length,
    labels: labels.filter((l) => l.left < box.left - 1 || l.right > box.right + 1).length,
    page: document.documentElement.scrollWidth, window: window.innerWidth};
}"""


def week_of_runs() -> None:
    """Twenty resources, each with forty runs spread over the week (fewer than the fifty kept,
    so the chart is complete): mostly OK, some failed, one guard hold."""
    now = clock.now()
    runs = []
    for i in range(20):
        box = enable(make_resource(f"tech{i}"), status="ok", enabled_at=now - dt.timedelta(days=9),
                     last_attempt_at=now - dt.timedelta(minutes=i),
                     last_success_at=now - dt.timedelta(minutes=7 * i * i))  # fmt: skip
        for j in range(40):
            started = now - dt.timedelta(hours=4 * j, minutes=11 * i)
            outcome = Outcome.OK
            if (i + j) % 17 == 0:
                outcome = Outcome.FAILED
            elif (i * j) % 23 == 5:
                outcome = Outcome.PARTIAL
            elif i == 3 and j in (10, 11):
                outcome = Outcome.GUARD_TRIPPED
            runs.append(SyncRun(mailbox_settings=box, started_at=started, outcome=outcome,
                                finished_at=started + dt.timedelta(seconds=8)))  # fmt: skip
    SyncRun.objects.bulk_create(runs)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_chart_draws_its_bars_and_fits_the_screen(page, viewport):
    demo_config()
    make_admin("admin")
    week_of_runs()
    log_in(page, "admin")
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/extensions/exchange/status/")
    page.wait_for_selector("svg.xe-chart-svg rect.xe-bar")
    chart = page.evaluate(CHART)
    assert chart["hours"] == 168
    assert chart["bars"] > 150, chart  # drawn with a size, not only present in the markup
    assert chart["outside"] == 0 and chart["labels"] == 0, chart
    assert chart["page"] <= chart["window"], f"the page scrolls sideways: {chart}"
    assert chart["right"] <= width and chart["width"] > (300 if viewport == "phone" else 900)
    assert page.locator(".xe-chart-legend").is_visible()
    assert page.get_by_role("img", name="Sync runs per hour, last 7 days").is_visible()
    assert page.locator("table.xe-lag tbody tr").count() == 10
    if viewport == "desktop":
        screenshot(page, "status-health.png")


def test_a_stopped_worker_is_pointed_out_on_a_phone(page):
    demo_config()
    make_admin("admin")
    now = clock.now()
    box = enable(make_resource("tech1"), queued_at=now - dt.timedelta(minutes=12),
                 last_attempt_at=now - dt.timedelta(minutes=40), enabled_at=now)  # fmt: skip
    log_in(page, "admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/extensions/exchange/status/")
    warning = page.locator(".xe-stalled")
    assert warning.is_visible() and "No worker is taking tasks" in warning.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    MailboxSettings.objects.filter(pk=box.pk).update(last_attempt_at=clock.now())
    page.reload()
    assert page.locator(".xe-stalled").count() == 0
