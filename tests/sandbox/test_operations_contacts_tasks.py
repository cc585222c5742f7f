"""Contacts and tasks through real exchangelib against the sandbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from exchangelib import Account, Contact, Task
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress


def test_contact_round_trips_names_emails_phones_and_addresses(service_account: Account) -> None:
    contact = Contact(
        folder=service_account.contacts, given_name="Ada", middle_name="B.", surname="Lovelace",
        display_name="Ada Lovelace", company_name="Analytical Ltd", job_title="Engineer",
        email_addresses=[
            EmailAddress(email="ada@analytical.example", label="EmailAddress1"),
            EmailAddress(email="ada.home@example.org", label="EmailAddress2"),
            EmailAddress(email="ada.old@example.org", label="EmailAddress3"),
        ],
        phone_numbers=[
            PhoneNumber(phone_number="+44 20 1234", label="BusinessPhone"),
            PhoneNumber(phone_number="+44 7700 900", label="MobilePhone"),
        ],
        physical_addresses=[
            PhysicalAddress(label="Business", street="1 Engine St", city="London", zipcode="N1")
        ],
    )  # fmt: skip
    contact.save()

    got = service_account.contacts.get(id=contact.id)

    assert (got.given_name, got.middle_name, got.surname) == ("Ada", "B.", "Lovelace")
    assert (got.display_name, got.company_name, got.job_title) == (
        "Ada Lovelace", "Analytical Ltd", "Engineer",
    )  # fmt: skip
    emails = {e.label: e.email for e in got.email_addresses}
    assert emails == {
        "EmailAddress1": "ada@analytical.example", "EmailAddress2": "ada.home@example.org",
        "EmailAddress3": "ada.old@example.org",
    }  # fmt: skip
    phones = {p.label: p.phone_number for p in got.phone_numbers}
    assert phones == {"BusinessPhone": "+44 20 1234", "MobilePhone": "+44 7700 900"}
    (address,) = got.physical_addresses
    assert (address.label, address.street, address.city, address.zipcode) == (
        "Business", "1 Engine St", "London", "N1",
    )  # fmt: skip


def test_contact_update_of_indexed_fields_replaces_and_removes_entries(
    service_account: Account,
) -> None:
    contact = Contact(
        folder=service_account.contacts, display_name="Grace", given_name="Grace",
        email_addresses=[EmailAddress(email="g@old.example", label="EmailAddress1")],
        phone_numbers=[PhoneNumber(phone_number="111", label="HomePhone")],
    )  # fmt: skip
    contact.save()

    contact.email_addresses = [EmailAddress(email="g@new.example", label="EmailAddress2")]
    contact.phone_numbers = [PhoneNumber(phone_number="222", label="BusinessFax")]
    contact.physical_addresses = [PhysicalAddress(label="Home", city="Arlington")]
    contact.save(update_fields=["email_addresses", "phone_numbers", "physical_addresses"])
    got = service_account.contacts.get(id=contact.id)

    assert [(e.label, e.email) for e in got.email_addresses] == [("EmailAddress2", "g@new.example")]
    assert [(p.label, p.phone_number) for p in got.phone_numbers] == [("BusinessFax", "222")]
    assert [(a.label, a.city) for a in got.physical_addresses] == [("Home", "Arlington")]


def test_contact_delete_and_listing(service_account: Account) -> None:
    for name in ("One", "Two", "Three"):
        Contact(folder=service_account.contacts, display_name=name, given_name=name).save()
    two = service_account.contacts.get(display_name="Two")
    two.delete()

    names = sorted(c.display_name for c in service_account.contacts.all().only("display_name"))

    assert names == ["One", "Three"]


def test_task_round_trips_dates_status_and_percent_complete(service_account: Account) -> None:
    task = Task(
        folder=service_account.tasks, subject="Order parts", body="Two pumps",
        start_date=dt.date(2025, 3, 3), due_date=dt.date(2025, 3, 5), status="InProgress",
        percent_complete=Decimal(40),
    )  # fmt: skip
    task.save()

    got = service_account.tasks.get(id=task.id)

    assert (got.subject, got.body, got.status) == ("Order parts", "Two pumps", "InProgress")
    assert (got.start_date, got.due_date) == (dt.date(2025, 3, 3), dt.date(2025, 3, 5))
    assert got.percent_complete == Decimal(40) and got.is_complete is False


def test_completing_a_task_sets_its_complete_date(service_account: Account) -> None:
    task = Task(folder=service_account.tasks, subject="Call back")
    task.save()

    task.complete()
    got = service_account.tasks.get(id=task.id)

    assert (got.status, got.percent_complete, got.is_complete) == ("Completed", 100, True)
    assert got.complete_date is not None
    got.delete()
    assert service_account.tasks.all().count() == 0
