"""The to-do form in a real browser: the contact list follows the account chosen."""

from __future__ import annotations

import pytest
from django.urls import reverse

from psa.scheduling.models import Todo
from tests import clock
from tests.browser.test_calendar_browser import log_in
from tests.builders import make_account, make_contact, make_resource

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def choosable_contacts(page) -> list[str]:
    """The names of the contact options a user can pick now (shown and enabled)."""
    return page.eval_on_selector(
        "#id_contact",
        "s => [...s.options].filter(o => o.value && !o.hidden && !o.disabled)"
        ".map(o => o.textContent.split(' (')[0])",
    )


def wait_for_contacts(page, names: list[str]) -> None:
    page.wait_for_function(
        """names => {
            const s = document.getElementById("id_contact");
            const shown = [...s.options].filter(o => o.value && !o.hidden && !o.disabled)
                .map(o => o.textContent.split(" (")[0]);
            return JSON.stringify(shown) === JSON.stringify(names);
        }""",
        arg=names,
    )


@pytest.fixture
def accounts():
    acme, globex = make_account("Acme Ltd"), make_account("Globex")
    make_contact(acme, first_name="Ann", last_name="Archer")
    make_contact(acme, first_name="Bob", last_name="Baker")
    make_contact(globex, first_name="Gil", last_name="Grant")
    return acme, globex


def test_changing_the_account_leaves_only_its_contacts_to_choose(page, accounts):
    make_resource("tech1")
    log_in(page, "tech1")
    page.goto(reverse("todo_create"))
    assert choosable_contacts(page) == ["Ann Archer", "Bob Baker", "Gil Grant"]
    page.select_option("#id_contact", label="Gil Grant (Globex)")
    page.select_option("#id_account", label="Acme Ltd")
    wait_for_contacts(page, ["Ann Archer", "Bob Baker"])
    assert page.input_value("#id_contact") == ""  # Globex's Gil is no longer chosen
    page.select_option("#id_account", label="Globex")
    wait_for_contacts(page, ["Gil Grant"])


def test_a_form_sent_back_for_one_account_still_offers_another_accounts_contacts(page, accounts):
    """The server narrowed the list to Globex; choosing Acme must bring Acme's contacts."""
    tech = make_resource("tech1")
    log_in(page, "tech1")
    page.goto(reverse("todo_create"))
    page.select_option("#id_account", label="Globex")
    page.click("button:has-text('Save')")  # no description: the form comes back
    page.locator("#field-description .error").wait_for()
    assert choosable_contacts(page) == ["Gil Grant"]
    page.select_option("#id_account", label="Acme Ltd")
    wait_for_contacts(page, ["Ann Archer", "Bob Baker"])
    page.select_option("#id_contact", label="Bob Baker (Acme Ltd)")
    page.fill("#id_description", "Call Bob")
    local = clock.day(1, "10:00", tz=tech.time_zone).astimezone(tech.tzinfo)
    for field in ("start", "end"):
        page.fill(f"#id_{field}_0", f"{local:%Y-%m-%d}")
        page.fill(f"#id_{field}_1", f"{local:%H:%M}")
    page.click("button:has-text('Save')")
    page.get_by_text("To-do created.").wait_for()
    todo = Todo.objects.get()
    assert (todo.account.name, todo.contact.first_name) == ("Acme Ltd", "Bob")


def test_without_javascript_the_server_narrows_the_list_when_the_form_comes_back(
    browser, live_server, accounts
):
    make_resource("tech1")
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, "tech1")
        page.goto(reverse("todo_create"))
        page.select_option("#id_account", label="Acme Ltd")
        page.click("button:has-text('Save')")
        page.locator("#field-description .error").wait_for()
        options = page.eval_on_selector_all("#id_contact option", "os => os.map(o => o.value)")
        assert len([value for value in options if value]) == 2
    finally:
        context.close()


@pytest.mark.parametrize(("language", "written"), [("en", "30/03/2026"), ("en-us", "03/30/2026")])
def test_the_date_picker_writes_the_date_in_the_products_order(page, language, written):
    """The browser's own picker (a hidden native input) answers ISO; the typed date shows it the
    product's way, whatever the browser's locale."""
    make_resource("tech1", language=language)
    log_in(page, "tech1")
    page.goto(reverse("todo_create"))
    assert page.locator("#field-start button.date-pick").is_visible()
    page.eval_on_selector(
        "#field-start input.date-native",
        "n => { n.value = '2026-03-30'; n.dispatchEvent(new Event('change')); }",
    )
    assert page.input_value("#id_start_0") == written
    assert page.get_attribute("#field-start button.date-pick", "aria-label") == "Choose a date"
