"""A technician and an administrator use the calendar in a real browser."""

from __future__ import annotations

import datetime as dt

import pytest

from psa.resources.models import Resource
from psa.scheduling.models import Appointment, Todo
from tests import clock
from tests.builders import PASSWORD, make_account, make_admin, make_appointment, make_resource

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def today_at(resource: Resource, hour: int) -> dt.datetime:
    """``hour`` o'clock today on ``resource``'s wall clock (today as their time zone sees it)."""
    return clock.day(0, f"{hour:02d}:00", tz=resource.time_zone)


def fill_when(page, field: str, resource: Resource, hour: int) -> None:
    """Type ``hour`` o'clock today in ``resource``'s time zone into the date input and the time
    input (24-hour, the English default) of ``field``."""
    local = today_at(resource, hour).astimezone(resource.tzinfo)
    page.fill(f"#id_{field}_0", f"{local:%Y-%m-%d}")
    page.fill(f"#id_{field}_1", f"{local:%H:%M}")


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form[action*=login] button[type=submit]")  # not the header's language switch
    page.wait_for_url("**/calendar/")


def test_technician_manages_appointments_and_todos_on_this_weeks_agenda(page):
    tech = make_resource("tech1", first_name="Terry", last_name="Tech")
    make_appointment(tech, start=today_at(tech, 8), title="Morning stand-up")
    make_account("Acme Ltd")
    log_in(page, "tech1")
    assert page.locator(".day.today").get_by_text("Morning stand-up").is_visible()

    page.click("text=New appointment")
    page.fill("#id_title", "Install printer")
    fill_when(page, "start", tech, 13)
    fill_when(page, "end", tech, 14)
    page.click("button:has-text('Save')")
    page.get_by_text("Appointment created.").wait_for()
    page.locator(".day.today").get_by_text("Install printer").click()
    page.fill("#id_title", "Install two printers")
    page.click("button:has-text('Save')")
    page.locator(".day.today").get_by_text("Install two printers").wait_for()
    page.get_by_text("Install two printers").click()
    page.click("text=Delete…")
    page.click("button:has-text('Delete')")
    page.get_by_text("The appointment was deleted.").wait_for()
    assert not Appointment.objects.filter(title__startswith="Install").exists()

    page.click("text=New to-do")
    page.select_option("#id_account", label="Acme Ltd")
    page.fill("#id_description", "Call about the invoice")
    fill_when(page, "start", tech, 15)
    fill_when(page, "end", tech, 15)
    page.click("button:has-text('Save')")
    page.get_by_text("To-do created.").wait_for()
    page.locator(".day.today").get_by_text("Call about the invoice").click()
    page.check("#id_completed")
    page.click("button:has-text('Save')")
    page.locator(".entry.done").get_by_text("Call about the invoice").wait_for()
    page.get_by_text("Call about the invoice").click()
    page.click("text=Delete…")
    page.click("button:has-text('Delete')")
    page.get_by_text("The to-do was deleted.").wait_for()
    assert not Todo.objects.exists()


def test_admin_switches_to_another_technicians_calendar_and_opens_django_admin(page):
    make_admin("admin")
    tech = make_resource("tech2", first_name="Pat", last_name="Field")
    make_appointment(tech, start=today_at(tech, 10), title="Server migration")
    log_in(page, "admin")
    page.select_option("#resource-picker", label="Pat Field")  # psa.js submits on change
    page.wait_for_url(f"**/calendar/?resource={tech.pk}*")
    assert page.get_by_text("Server migration").is_visible()
    page.click("text=Django admin")
    page.get_by_text("Site administration").wait_for()
