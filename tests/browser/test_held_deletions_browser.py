"""Confirm deletions and Restore in a real browser: an administrator sees what the mass-delete
guard holds on the resource's page and decides (docs/sync-rules.md, "Mass-delete guard"). The
decision is stored and queued; the run that carries it out is tested in
tests/integration/sync_rules/test_mass_delete_guard.py."""

from __future__ import annotations

import pytest

from exchange_ext.models import HeldDeletion, ItemLink, MailboxSettings
from tests.browser.test_exchange_config_browser import log_in, screenshot
from tests.builders import make_appointment, make_resource
from tests.clock import day
from tests.exchange_ext.pages import enable, make_exchange_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def held_mailbox(count: int = 25) -> MailboxSettings:
    """A technician whose calendar looked suddenly empty: ``count`` deletions held."""
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    settings = enable(tech, status="held", last_error=f"Held {count} deletions for an admin.")
    for n in range(count):
        appointment = make_appointment(tech, day(1 + n % 5, f"{8 + n % 9:02d}:00"),
                                       title=f"Visit {n:02d}")  # fmt: skip
        ItemLink.objects.create(mailbox_settings=settings, kind="appointment", origin="exchange",
                                psa_id=appointment.pk, exchange_id=f"AAMk{n}")  # fmt: skip
        HeldDeletion.objects.create(mailbox_settings=settings, folder="calendar",
                                    kind="appointment", psa_id=appointment.pk, op="delete_psa",
                                    exchange_id=f"AAMk{n}", title=f"Visit {n:02d}",
                                    state="held")  # fmt: skip
    return settings


@pytest.mark.parametrize(
    ("button", "state", "message"),
    [("Confirm deletions", "confirmed", "Confirmed: 25 deletions are applied"),
     ("Restore", "restored", "Restored: 25 items are kept")],
)  # fmt: skip
def test_an_administrator_decides_on_held_deletions(page, button, state, message):
    settings = held_mailbox()
    make_exchange_admin("xadmin")
    log_in(page, "xadmin")
    page.goto("/extensions/exchange/resources/")
    assert "Held" in page.inner_text("main")
    page.goto(f"/extensions/exchange/resources/{settings.resource_id}/")
    panel = page.locator("section.xe-held")
    assert "25 deletions are held" in panel.inner_text()
    assert "Visit 00" in panel.inner_text()
    screenshot(page, f"held-deletions-{state}.png")
    panel.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    assert message in page.inner_text("main")
    assert set(HeldDeletion.objects.values_list("state", flat=True)) == {state}
