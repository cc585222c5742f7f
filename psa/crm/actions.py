"""Every write to accounts, contacts and opportunities (see ``psa.audit.writes``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from psa.audit.origin import Origin
from psa.audit.writes import Changes, create_object, delete_object, update_object
from psa.crm.models import Account, Contact, Opportunity

_CLOSED_STAGES = {Opportunity.Stage.WON, Opportunity.Stage.LOST}


def do_create_account(origin: Origin, /, **fields: Any) -> Account:
    return create_object(origin, Account, fields)


def do_update_account(origin: Origin, account: Account, /, **fields: Any) -> Changes:
    return update_object(origin, account, fields)


def do_delete_account(origin: Origin, account: Account, /) -> None:
    """Delete ``account`` and, each through its own audited write, what the database would
    remove or re-point with it: its to-dos, opportunities and contacts go, its tickets lose
    the account. An account with service calls cannot be deleted (``ProtectedError``)."""
    with transaction.atomic():
        for todo in account.todos.all():
            delete_object(origin, todo)
        for opportunity in account.opportunities.all():
            delete_object(origin, opportunity)
        for contact in account.contacts.all():
            do_delete_contact(origin, contact)
        for ticket in account.tickets.all():
            update_object(origin, ticket, {"account": None})
        delete_object(origin, account)


def do_create_contact(origin: Origin, /, **fields: Any) -> Contact:
    return create_object(origin, Contact, fields)


def do_update_contact(origin: Origin, contact: Contact, /, **fields: Any) -> Changes:
    return update_object(origin, contact, fields)


def do_delete_contact(origin: Origin, contact: Contact, /) -> None:
    """Delete ``contact``; its to-dos and opportunities lose it, each an audited write."""
    with transaction.atomic():
        for todo in contact.todos.all():
            update_object(origin, todo, {"contact": None})
        for opportunity in contact.opportunities.all():
            update_object(origin, opportunity, {"contact": None})
        delete_object(origin, contact)


def do_create_opportunity(origin: Origin, /, **fields: Any) -> Opportunity:
    """Create an opportunity; ``closed`` follows the stage (won/lost close it)."""
    fields["closed"] = fields.get("stage", Opportunity.Stage.PROSPECT) in _CLOSED_STAGES
    return create_object(origin, Opportunity, fields)


def do_update_opportunity(origin: Origin, opportunity: Opportunity, /, **fields: Any) -> Changes:
    if "stage" in fields:
        fields["closed"] = fields["stage"] in _CLOSED_STAGES
    return update_object(origin, opportunity, fields)


def do_delete_opportunity(origin: Origin, opportunity: Opportunity, /) -> None:
    delete_object(origin, opportunity)
