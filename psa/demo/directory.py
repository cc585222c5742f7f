"""The time-independent demo data: organisation, people, accounts, contacts, opportunities, tickets.

Every row is found by its natural key (user name, resource email, account name, contact name
within its account, opportunity title within its account, ticket number) and created or brought
back to the reference values through the PSA's actions, so loading twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User

from psa.audit.origin import Origin
from psa.audit.writes import create_object, update_object
from psa.crm.actions import (
    do_create_account,
    do_create_contact,
    do_create_opportunity,
    do_update_account,
    do_update_contact,
    do_update_opportunity,
)
from psa.crm.models import Account, Contact, Opportunity
from psa.demo.reference import Reference
from psa.resources.actions import do_create_resource, do_update_resource
from psa.resources.models import Organisation, Resource
from psa.scheduling.actions import do_create_ticket, do_update_ticket
from psa.scheduling.models import Ticket

DEMO = Origin.by_system("demo")


@dataclass(frozen=True)
class Directory:
    """What the calendar generator needs: the people and the accounts, in a stable order."""

    resources: list[Resource]
    accounts: list[Account]
    tickets: list[Ticket]


def ensure_directory(reference: Reference) -> Directory:
    """Create or update every reference row; return them for the calendar generator."""
    ensure_organisation(reference.staff["organisation"])
    resources = ensure_people(reference.staff["people"], reference.password)
    accounts = ensure_accounts(reference.accounts, resources)
    tickets = ensure_tickets(reference.work["tickets"], accounts)
    return Directory(resources=resources, accounts=accounts, tickets=tickets)


def ensure_organisation(fields: dict[str, Any]) -> Organisation:
    # The PSA has one organisation row and no action module for it; the generic audited
    # writers are what the actions wrap, so the demo still leaves an audit trail.
    organisation = Organisation.objects.order_by("pk").first()
    if organisation is None:
        return create_object(DEMO, Organisation, fields)
    update_object(DEMO, organisation, fields)
    return organisation


def ensure_people(people: list[dict[str, Any]], password: str) -> list[Resource]:
    """Users with the demo password and their resources; ``superuser`` people get every right."""
    # One hash with a fixed salt for all: hashing costs ~0.3 s each, and an unchanged hash keeps
    # everyone's sessions valid when the demo is loaded again. Acceptable for demo-only logins.
    password_hash = make_password(password, salt="northwinddemo")
    return [_ensure_person(person, password_hash) for person in people]


def _ensure_person(person: dict[str, Any], password_hash: str) -> Resource:
    superuser = bool(person.get("superuser"))
    user, _ = User.objects.update_or_create(
        username=person["username"],
        defaults={
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "email": person["email"],
            "password": password_hash,
            "is_staff": superuser,
            "is_superuser": superuser,
            "is_active": True,
        },
    )
    fields = {
        "first_name": person["first_name"],
        "last_name": person["last_name"],
        "email": person["email"],
        "time_zone": person["time_zone"],
        "active": True,
    }
    resource = Resource.objects.filter(user=user).first()
    if resource is None:
        return do_create_resource(DEMO, user=user, **fields)
    do_update_resource(DEMO, resource, **fields)
    return resource


def ensure_accounts(rows: list[dict[str, Any]], resources: list[Resource]) -> list[Account]:
    """Accounts with their contacts and opportunities; managers assigned round-robin."""
    accounts = []
    for index, row in enumerate(rows):
        manager = resources[index % len(resources)]
        account = _ensure_account(row, manager)
        contacts = [_ensure_contact(account, contact) for contact in row["contacts"]]
        for position, opportunity in enumerate(row["opportunities"]):
            owner = resources[(index + position + 1) % len(resources)]
            _ensure_opportunity(account, contacts[opportunity["contact"]], owner, opportunity)
        accounts.append(account)
    return accounts


def _ensure_account(row: dict[str, Any], manager: Resource) -> Account:
    keys = ("street", "city", "postal_code", "state", "country", "phone")
    fields = {key: row[key] for key in keys} | {"account_manager": manager, "active": True}
    account = Account.objects.filter(name=row["name"]).first()
    if account is None:
        return do_create_account(DEMO, name=row["name"], **fields)
    do_update_account(DEMO, account, **fields)
    return account


def _ensure_contact(account: Account, row: dict[str, Any]) -> Contact:
    emails = [*row["emails"], "", ""][:3]
    fields = {
        "title": row["title"],
        "email": emails[0],
        "email2": emails[1],
        "email3": emails[2],
        "business_phone": row["business_phone"],
        "mobile_phone": row["mobile_phone"],
        "fax": row["fax"],
        "active": row["active"],
        # Contacts work at the account's address, as most PSA contacts do.
        "street": account.street,
        "city": account.city,
        "postal_code": account.postal_code,
        "state": account.state,
        "country": account.country,
    }
    key = {"account": account, "first_name": row["first_name"], "last_name": row["last_name"]}
    contact = Contact.objects.filter(**key).first()
    if contact is None:
        return do_create_contact(DEMO, **key, **fields)
    do_update_contact(DEMO, contact, **fields)
    return contact


def _ensure_opportunity(
    account: Account, contact: Contact, owner: Resource, row: dict[str, Any]
) -> Opportunity:
    fields = {"contact": contact, "owner": owner, "stage": row["stage"]}
    opportunity = Opportunity.objects.filter(account=account, title=row["title"]).first()
    if opportunity is None:
        return do_create_opportunity(DEMO, account=account, title=row["title"], **fields)
    do_update_opportunity(DEMO, opportunity, **fields)
    return opportunity


def ensure_tickets(rows: list[dict[str, Any]], accounts: list[Account]) -> list[Ticket]:
    """Tickets and project tasks, spread over the accounts (every third account has one)."""
    tickets = []
    for index, row in enumerate(rows):
        fields = {
            "title": row["title"],
            "kind": row["kind"],
            "status": row["status"],
            "account": accounts[(index * 3) % len(accounts)],
        }
        ticket = Ticket.objects.filter(number=row["number"]).first()
        if ticket is None:
            ticket = do_create_ticket(DEMO, number=row["number"], **fields)
        else:
            do_update_ticket(DEMO, ticket, **fields)
        tickets.append(ticket)
    return tickets
