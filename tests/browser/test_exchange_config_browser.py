"""The MS Exchange configuration pages in a real browser: show/hide and disabled states driven
by exchange_ext.js, select-all, a General-tab save against the local sandbox, and a technician's
profile tab. Each test saves a full-page screenshot under test-results/; with
``UPDATE_SCREENSHOTS=1`` it also refreshes the committed one under docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pytest

from exchange_ext.models import ExchangeConfig
from tests import clock
from tests.builders import PASSWORD, make_resource
from tests.exchange_ext.pages import (
    SANDBOX_DOMAIN,
    SANDBOX_LOGIN,
    SANDBOX_PASSWORD,
    enable,
    make_exchange_admin,
    running_sandbox,
    store_config,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def screenshot(page, name: str) -> None:
    """Full-page PNG in test-results/ (artifact) and, on request, in docs/screenshots/."""
    artifact = ROOT / "test-results" / "screenshots" / name
    artifact.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifact), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(artifact, ROOT / "docs" / "screenshots" / name)


def log_in(page, username: str) -> None:
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form[action*=login] button[type=submit]")  # not the header's language switch
    page.wait_for_url("**/calendar/")


def demo_config(**fields) -> ExchangeConfig:
    defaults = {"profile_name": "Northwind Traders", "server_address": "mail.northwind.example",
                "username": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD, "domain": SANDBOX_DOMAIN,
                "use_graph": False, "notification_emails": "it-ops@northwind.example"}  # fmt: skip
    return store_config(**{**defaults, **fields})


def test_toggling_basic_auth_hides_use_graph_and_swaps_the_credential_fields(page):
    make_exchange_admin("admin")
    demo_config()
    log_in(page, "admin")
    page.goto("/extensions/exchange/general/")
    assert page.is_visible("#id_username") and page.is_visible("#id_password")
    assert not page.is_visible("#id_use_graph") and not page.is_visible("#id_tenant_id")
    screenshot(page, "general.png")
    page.uncheck("#id_use_basic_auth")
    assert page.is_visible("#id_use_graph") and page.is_visible("#id_tenant_id")
    assert page.is_visible("#id_client_secret") and page.is_visible("#id_client_certificate")
    assert not page.is_visible("#id_username") and not page.is_visible("#id_domain")
    page.check("#id_use_basic_auth")
    assert not page.is_visible("#id_use_graph") and page.is_visible("#id_username")


def test_saving_the_general_tab_against_the_sandbox_shows_the_confirmation(
    page, tmp_path, monkeypatch
):
    make_exchange_admin("admin")
    enable(make_resource("tech1", email="tech1@northwind.example"))
    with running_sandbox(tmp_path, monkeypatch) as sandbox:
        log_in(page, "admin")
        page.goto("/extensions/exchange/general/")
        page.fill("#id_profile_name", "Northwind Traders")
        page.fill("#id_server_address", f"localhost:{sandbox.port}")
        page.fill("#id_username", SANDBOX_LOGIN)
        page.fill("#id_password", SANDBOX_PASSWORD)
        page.fill("#id_domain", SANDBOX_DOMAIN)
        page.click("button:has-text('Save')")
        page.get_by_text("MS Exchange configuration successfully updated.").wait_for()
    assert ExchangeConfig.load().server_address == f"localhost:{sandbox.port}"
    assert SANDBOX_PASSWORD not in page.content()


def test_do_not_import_disables_the_free_time_checkbox(page):
    make_exchange_admin("admin")
    demo_config()
    log_in(page, "admin")
    page.goto("/extensions/exchange/synchronization/")
    assert page.is_enabled("#id_import_free_time")
    assert page.get_by_text("Every Exchange user in your organisation can read this folder.")
    screenshot(page, "synchronization.png")
    page.check("input[name=import_mode][value=none]")
    assert page.is_disabled("#id_import_free_time")
    page.check("input[name=import_mode][value=times_only]")
    assert page.is_enabled("#id_import_free_time")


def test_select_all_on_the_resources_tab_checks_every_row(page):
    make_exchange_admin("admin")
    people = [("Jonas", "Brandt"), ("Aylin", "Demir"), ("Marek", "Nowak"), ("Fiona", "MacLeod"),
              ("Samuel", "Okafor"), ("Priya", "Raman")]  # fmt: skip
    resources = []
    for i, (first, last) in enumerate(people, start=1):
        email = f"tech{i}@northwind.example"
        resources.append(make_resource(f"tech{i}", first_name=first, last_name=last, email=email))
    attempt = clock.now() - dt.timedelta(minutes=7)
    enable(resources[0], status="ok", last_attempt_at=attempt, last_success_at=attempt)
    enable(resources[1], status="failing", last_attempt_at=attempt,
           last_error="Exchange rejected the password of this mailbox (401).")  # fmt: skip
    enable(resources[2])
    log_in(page, "admin")
    page.goto("/extensions/exchange/resources/")
    screenshot(page, "resources.png")
    page.check("#select-all")
    boxes = page.locator("input[name=enabled]")
    assert boxes.count() == 7
    assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    page.click("button:has-text('Save')")
    page.get_by_text("4 resources enabled, 0 disabled").wait_for()


def test_technician_sees_disabled_checkboxes_for_types_the_admin_turned_off(page):
    demo_config(sync_appointments=False, import_mode="none", use_for_all_users=True)
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt",
                         email="tech1@northwind.example")  # fmt: skip
    now = clock.now()
    enable(tech, status="ok", last_attempt_at=now - dt.timedelta(minutes=3),
           last_success_at=now - dt.timedelta(minutes=3))  # fmt: skip
    log_in(page, "tech1")
    page.goto("/profile/exchange/")
    assert page.is_disabled("#id_export_appointments")
    assert page.is_disabled("#id_import_appointments")
    assert page.is_disabled("#id_password")
    assert page.is_enabled("#id_export_todos")
    screenshot(page, "profile_exchange.png")
    page.click("button:has-text('Sync now')")
    # Answered in place (htmx): the status block says the sync is requested or queued.
    page.get_by_text(re.compile(r"Sync requested at |Queued at ")).wait_for()
