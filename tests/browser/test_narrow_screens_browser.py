"""Every main page on a 390 px phone and a 1280 px desktop, in a real browser (issue 15, item 9).

On each page, as an administrator and as a technician where the page is theirs too:

- the page itself never scrolls sideways (``scrollWidth <= innerWidth``), and no card, day or
  side panel has content sticking out of it (long addresses, "(ORM default)" on the Status tab);
- at 390 px the main navigation is collapsed behind the menu button (its links hidden until the
  menu is opened; opening it shows them and the language switcher); at 1280 px it shows at once;
- a tab strip stays on one row (every tab shares one ``offsetTop``);
- each wide table scrolls inside its own container, its last column comes into view when that
  container is scrolled to the end, and at 390 px an overflowing one says so (the scroll hint).

With ``UPDATE_SCREENSHOTS=1`` the 390 px agenda, Resources and Status pages refresh
docs/screenshots/phone-*.png (see ``screenshot``).
"""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext.models import HeldDeletion, ItemLink, SyncRun
from tests import clock
from tests.browser.test_exchange_config_browser import ROOT, demo_config, log_in, screenshot
from tests.builders import (
    PASSWORD,
    make_account,
    make_admin,
    make_appointment,
    make_contact,
    make_resource,
)
from tests.exchange_ext.pages import enable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
# Pages shot at 390 px with UPDATE_SCREENSHOTS=1: page name → file under docs/screenshots/.
SHOTS = {"agenda": "phone-agenda.png", "resources": "phone-resources.png",
         "status": "phone-status.png"}  # fmt: skip
LONG_MAIL = "jonas.brandt-oberhausen.field-service@northwind-traders-international.example"


def sync_run(settings, minutes_ago: int, **fields) -> SyncRun:
    started = clock.now() - dt.timedelta(minutes=minutes_ago)
    counts = {"appointment": {"psa": {"created": 2, "updated": 1},
                              "exchange": {"created": 3, "deleted": 1}}}  # fmt: skip
    defaults = {"started_at": started, "finished_at": started + dt.timedelta(seconds=9),
                "outcome": SyncRun.Outcome.PARTIAL, "trigger": SyncRun.Trigger.SCHEDULED,
                "counts": counts, "errors": 2, "conflicts": 1,
                "error": "Exchange refused one item: ErrorItemNotFound"}  # fmt: skip
    return SyncRun.objects.create(mailbox_settings=settings, **{**defaults, **fields})


def world() -> dict[str, dict[str, str]]:
    """An administrator and a technician with synced mailboxes, sync runs, a failing and a held
    mailbox, an account with contacts and appointments; their page paths by name."""
    demo_config()
    now = clock.now()
    admin = make_admin("admin")
    admin_box = enable(admin, mailbox="admin@northwind.example", status="ok",
                       last_attempt_at=now, last_success_at=now)  # fmt: skip
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt-Oberhausen",
                         email=LONG_MAIL)  # fmt: skip
    tech_box = enable(tech, status="ok", last_attempt_at=now, last_success_at=now)
    failing = make_resource("tech2", first_name="Aylin", last_name="Demir",
                            email="aylin.demir@northwind-traders.example")  # fmt: skip
    enable(failing, status="failing", last_attempt_at=now,
           failing_since=now - dt.timedelta(hours=3),
           last_error="Exchange rejected the password of this mailbox (401).")  # fmt: skip
    held = make_resource("tech3", first_name="Marek", last_name="Nowak")
    held_box = enable(held, status="held", last_error="Held 3 deletions for an admin.")
    for n in range(3):
        item = make_appointment(held, clock.day(1 + n, "09:00"), title=f"Visit {n:02d}")
        ItemLink.objects.create(mailbox_settings=held_box, kind="appointment", origin="exchange",
                                psa_id=item.pk, exchange_id=f"AAMk{n}")  # fmt: skip
        HeldDeletion.objects.create(mailbox_settings=held_box, folder="calendar",
                                    kind="appointment", psa_id=item.pk, op="delete_psa",
                                    exchange_id=f"AAMk{n}", title=f"Visit {n:02d}",
                                    state="held")  # fmt: skip
    for minutes, box in enumerate([admin_box, tech_box, admin_box, tech_box], start=5):
        sync_run(box, minutes)
    sync_run(None, 30, outcome=SyncRun.Outcome.OK, errors=0, error="")
    account = make_account("Northwind Traders International Holdings", phone="+49 30 1234 5678",
                           account_manager=admin)  # fmt: skip
    contact = make_contact(account, first_name="Fiona", last_name="MacLeod",
                           title="Head of Facility Management", email=LONG_MAIL)  # fmt: skip
    make_contact(account, first_name="Samuel", last_name="Okafor", email="s.okafor@client.test")
    make_appointment(admin, start=clock.day(0, "15:00", tz=admin.time_zone), title="Site visit")
    make_appointment(tech, start=clock.day(0, "10:00", tz=tech.time_zone),
                     title="Quarterly maintenance of the air conditioning")  # fmt: skip
    outlook = make_appointment(admin, start=clock.day(1, "11:00", tz=admin.time_zone),
                               title="Board meeting (from Outlook)", read_only=True)  # fmt: skip
    common = {
        "agenda": "/calendar/",
        "item form": "/calendar/appointments/new/",
        "accounts": "/crm/accounts/",
        "account": f"/crm/accounts/{account.pk}/",
        "contacts": "/crm/contacts/",
        "contact": f"/crm/contacts/{contact.pk}/",
        "profile": "/profile/",
        "profile exchange": "/profile/exchange/",
    }
    admin_pages = {
        **common,
        "appointment detail": f"/calendar/appointments/{outlook.pk}/",
        "extensions": "/extensions/",
        "general": "/extensions/exchange/general/",
        "synchronization": "/extensions/exchange/synchronization/",
        "resources": "/extensions/exchange/resources/",
        "status": "/extensions/exchange/status/",
        "resource page and run log": f"/extensions/exchange/resources/{tech.pk}/",
        "held deletions": f"/extensions/exchange/resources/{held.pk}/",
        "remove synced items": f"/extensions/exchange/resources/{tech.pk}/remove/",
    }
    return {"admin": admin_pages, "tech1": common}


OVERFLOW = """() => {
  const root = document.documentElement;
  const boxes = [...document.querySelectorAll(".card, .day, .xe-side, .xe-held, .page-head")]
    .filter((box) => box.scrollWidth > box.clientWidth + 1)
    .map((box) => `${box.className}: ${box.scrollWidth} > ${box.clientWidth}`);
  return {page: root.scrollWidth, window: window.innerWidth, boxes};
}"""

TABS = """() => [...document.querySelectorAll("nav.tabs")].map(
  (strip) => [...strip.querySelectorAll(".tab")].map((tab) => tab.offsetTop))"""

# Each table container scrolled to its end: where its last header cell and the container are.
TABLES = """() => [...document.querySelectorAll(".table-wrap")].map((wrap) => {
  wrap.scrollLeft = wrap.scrollWidth;
  const cells = wrap.querySelectorAll("thead tr:first-child th");
  const last = cells[cells.length - 1].getBoundingClientRect();
  const box = wrap.getBoundingClientRect();
  const hint = wrap.querySelector(":scope > .scroll-hint");
  const result = {left: last.left, right: last.right, boxLeft: box.left, boxRight: box.right,
    overflows: wrap.scrollWidth > wrap.clientWidth,
    hint: !!hint && hint.getClientRects().length > 0,
    label: cells[cells.length - 1].textContent.trim()};
  wrap.scrollLeft = 0;
  return result;
})"""


def layout_problems(page, where: str, phone: bool) -> list[str]:
    """What is wrong with the current page's layout (empty when nothing)."""
    problems = []
    sizes = page.evaluate(OVERFLOW)
    if sizes["page"] > sizes["window"]:
        problems.append(f"{where}: page scrolls sideways ({sizes['page']} > {sizes['window']} px)")
    problems += [f"{where}: content sticks out of {box}" for box in sizes["boxes"]]
    for tops in page.evaluate(TABS):
        if len(set(tops)) > 1:
            problems.append(f"{where}: tabs wrap onto {len(set(tops))} rows")
    for table in page.evaluate(TABLES):
        inside = table["left"] >= table["boxLeft"] - 1 and table["right"] <= table["boxRight"] + 1
        if not inside or table["boxRight"] > VIEWPORTS["phone" if phone else "desktop"][0]:
            problems.append(f"{where}: column {table['label']!r} not reachable: {table}")
        if phone and table["overflows"] and not table["hint"]:
            problems.append(f"{where}: table scrolls sideways without a hint")
        if not phone and table["hint"]:
            problems.append(f"{where}: scroll hint shown on a wide screen")
    return problems


def navigation_problems(page, where: str, phone: bool) -> list[str]:
    """The main navigation: collapsed behind the menu at 390 px, open at 1280 px."""
    link = page.locator(".mainnav a").first
    menu = page.locator(".navmenu-button")
    if not phone:
        if not link.is_visible() or menu.is_visible():
            return [f"{where}: the navigation is not shown at once on a wide screen"]
        return []
    if link.is_visible():
        return [f"{where}: the navigation is not collapsed"]
    if not menu.is_visible():
        return [f"{where}: no menu button"]
    menu.click()
    problems = []
    if not (link.is_visible() and page.locator("#lang-switch-select").is_visible()):
        problems.append(f"{where}: opening the menu shows neither the links nor the language")
    sizes = page.evaluate(OVERFLOW)
    if sizes["page"] > sizes["window"]:
        problems.append(f"{where}: the open menu scrolls sideways")
    menu.click()
    if link.is_visible():
        problems.append(f"{where}: the menu does not close")
    return problems


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("username", ["admin", "tech1"])
def test_every_page_fits_the_screen(page, username, viewport):
    pages = world()[username]
    phone = viewport == "phone"
    log_in(page, username)
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    problems = []
    for name, path in pages.items():
        response = page.goto(path)
        assert response is not None and response.ok, f"{name}: {path} answered {response}"
        where = f"{name} ({username}, {width} px)"
        problems += layout_problems(page, where, phone)
        problems += navigation_problems(page, where, phone)
        if phone and username == "admin" and name in SHOTS:
            screenshot(page, SHOTS[name])
    assert not problems, "\n".join(problems)


def test_an_opened_menu_reaches_every_link_and_the_language_switcher(page):
    world()
    log_in(page, "admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/extensions/exchange/status/")
    page.click(".navmenu-button")
    page.screenshot(path=str(ROOT / "test-results" / "screenshots" / "phone-menu-open.png"))
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.wait_for_url("**/crm/accounts/")
    assert not page.locator(".mainnav a").first.is_visible()  # a new page starts collapsed
    page.click(".navmenu-button")
    page.select_option("#lang-switch-select", "de")  # submits on change
    page.wait_for_selector("html[lang=de]")
    assert page.url.endswith("/crm/accounts/")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(ROOT / "test-results" / "screenshots" / "desktop-accounts.png"))


def test_the_active_tab_is_scrolled_into_view(page):
    world()
    log_in(page, "admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/extensions/exchange/status/")
    strip = page.locator("nav.tabs")
    assert strip.evaluate("(s) => s.scrollWidth > s.clientWidth"), "the tabs fit: no test here"
    active = strip.locator(".tab.active").bounding_box()
    box = strip.bounding_box()
    assert (
        box["x"] - 1 <= active["x"] and active["x"] + active["width"] <= box["x"] + box["width"] + 1
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_login_page_fits_and_keeps_the_language_switcher(page, viewport):
    make_resource("tech1")
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/accounts/login/")
    problems = layout_problems(page, f"login ({width} px)", viewport == "phone")
    assert not problems, "\n".join(problems)
    assert page.is_visible("#lang-switch-select")
    assert page.locator(".navmenu-button").count() == 0  # nothing to navigate to yet
    page.fill("#id_username", "tech1")
    page.fill("#id_password", PASSWORD)
    page.click("form[action*=login] button[type=submit]")
    page.wait_for_url("**/calendar/")


def test_the_menu_works_without_javascript(browser, live_server):
    """Progressive enhancement: <details> opens by itself, ::details-content shows it when wide."""
    world()
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto("/accounts/login/")
        page.fill("#id_username", "tech1")
        page.fill("#id_password", PASSWORD)
        page.click("form[action*=login] button[type=submit]")
        page.wait_for_url("**/calendar/")
        assert navigation_problems(page, "agenda without JavaScript", phone=True) == []
        page.set_viewport_size({"width": 1280, "height": 800})
        assert navigation_problems(page, "agenda without JavaScript", phone=False) == []
    finally:
        context.close()
