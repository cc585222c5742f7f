"""Folders, public folders, ResolveNames and mailbox access through real exchangelib."""

from __future__ import annotations

import pytest
from exchangelib import DELEGATE, Account, Contact
from exchangelib.errors import ErrorAccessDenied, ErrorFolderExists, ErrorNameResolutionNoResults
from exchangelib.folders import Calendar, Folder

from exchange_ext.sandbox.server import SandboxHandle


def test_distinguished_folders_have_exchange_names_and_classes(service_account: Account) -> None:
    folders = {
        "calendar": service_account.calendar,
        "contacts": service_account.contacts,
        "tasks": service_account.tasks,
        "inbox": service_account.inbox,
    }

    assert {k: (f.name, f.folder_class) for k, f in folders.items()} == {
        "calendar": ("Calendar", "IPF.Appointment"),
        "contacts": ("Contacts", "IPF.Contact"),
        "tasks": ("Tasks", "IPF.Task"),
        "inbox": ("Inbox", "IPF.Note"),
    }
    assert service_account.calendar.parent.name == "Top of Information Store"


def test_service_account_creates_a_public_contacts_folder_once(service_account: Account) -> None:
    root = service_account.public_folders_root
    folder = Folder(parent=root, name="PSA Contacts", folder_class="IPF.Contact")
    folder.save()

    assert folder.id and folder.folder_class == "IPF.Contact"
    assert [f.name for f in service_account.public_folders_root.refresh().children] == [
        "PSA Contacts"
    ]
    with pytest.raises(ErrorFolderExists):
        Folder(parent=root, name="PSA Contacts", folder_class="IPF.Contact").save()


def test_items_can_be_stored_in_a_public_contacts_folder(service_account: Account) -> None:
    folder = Folder(
        parent=service_account.public_folders_root, name="Shared", folder_class="IPF.Contact"
    )
    folder.save()

    Contact(folder=folder, display_name="Shared contact", given_name="Sam").save()

    assert [c.display_name for c in folder.all()] == ["Shared contact"]


def test_mailbox_subfolder_creation_and_lookup(service_account: Account) -> None:
    created = Calendar(parent=service_account.calendar, name="PSA appointments")
    created.save()

    assert [f.name for f in service_account.calendar.children] == ["PSA appointments"]
    assert created.folder_class == "IPF.Appointment"


def test_another_mailboxs_folder_is_denied(sandbox: SandboxHandle, account_factory) -> None:
    tech2 = account_factory(
        sandbox, "tech2@northwind.example", login="tech2", password="demo", access_type=DELEGATE
    )
    tech1_calendar = account_factory(sandbox, "tech1@northwind.example").calendar

    with pytest.raises(ErrorAccessDenied):
        list(Calendar(root=tech2.root, id=tech1_calendar.id).all())


def test_resolve_names_matches_mailboxes_by_address_and_name(service_account: Account) -> None:
    protocol = service_account.protocol

    (by_address,) = protocol.resolve_names(["tech2@northwind.example"])
    (by_name,) = protocol.resolve_names(["Aylin"])
    (nothing,) = protocol.resolve_names(["nobody-at-all"])

    assert by_address.email_address == "tech2@northwind.example"
    assert by_name.name == "Aylin Demir"
    assert isinstance(nothing, ErrorNameResolutionNoResults)
