"""The public contacts folder (EWS only): every active PSA contact in one public folder."""

from __future__ import annotations

from typing import Any

import pytest

from exchange_ext.sandbox import items_xml
from tests.builders import make_account, make_contact
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


def public_contacts(rules: Harness) -> list[str]:
    store = rules.store
    folders = [
        f for f in store.child_folders(store._public_root.id) if f.display_name == "PSA contacts"
    ]
    items: list[Any] = [item for f in folders for item in store.items_in(f.id)]
    return sorted(items_xml.item_to_fields(item)["given_name"] for item in items) if items else []


@pytest.mark.xfail(
    strict=True,
    reason="product gap: exchange_ext.engine never syncs FolderKind.PUBLIC_CONTACTS (the EWS "
    "backend supports it, no run uses it); see the report of the sync-rules tests",
)
def test_all_active_contacts_are_in_one_public_contacts_folder(rules: Harness):
    if rules.kind == "graph":
        pytest.skip("no public folders in Graph")
    rules.set(public_contacts_folder=True)
    tech = rules.enrol(1)
    make_contact(make_account(), first_name="Ann")
    make_contact(make_account(), first_name="Ben")
    make_contact(make_account(), first_name="Old", active=False)
    rules.sync(tech)
    assert public_contacts(rules) == ["Ann", "Ben"]
