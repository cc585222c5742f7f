"""The store on its own: backdoor dicts, sync states, persistence, change keys."""

from __future__ import annotations

import json

import pytest

from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.store import Store

ADDRESS = "user1@example.test"


@pytest.fixture
def store() -> Store:
    store = Store()
    store.add_mailbox("User1@Example.test", "User One")
    return store


def calendar_id(store: Store) -> str:
    folder = store.distinguished_folder(ADDRESS, "calendar")
    assert folder is not None
    return folder.id


def test_add_mailbox_is_idempotent_and_case_insensitive(store: Store) -> None:
    store.add_mailbox(ADDRESS, "Other name")

    assert store.mailboxes() == [{"address": ADDRESS, "display_name": "User One"}]
    assert store.has_mailbox("USER1@example.test")


def test_backdoor_create_update_list_delete_round_trip(store: Store) -> None:
    created = store.backdoor_create(
        ADDRESS, "calendar",
        {"subject": "Visit", "start": "2025-03-03T09:00:00+01:00",
         "end": "2025-03-03T10:00:00+01:00", "legacy_free_busy_status": "WorkingElsewhere",
         "categories": ["PSA"], "sensitivity": "Private", "is_all_day": False,
         "extended_properties": [{"property_set_id": "3F2C1E6A-8B7D-4C5E-9A1B-2D3E4F5A6B7C",
                                  "property_name": "PsaItemKey", "property_type": "String",
                                  "value": "psa:1"}]},
    )  # fmt: skip
    updated = store.backdoor_update(ADDRESS, created["id"], {"subject": "Visit 2", "location": "X"})

    (listed,) = store.backdoor_list(ADDRESS, "calendar")
    assert listed == updated
    assert updated["changekey"] != created["changekey"]
    assert (updated["start"], updated["end"]) == ("2025-03-03T08:00:00Z", "2025-03-03T09:00:00Z")
    assert updated["extended_properties"][0]["value"] == "psa:1"
    assert (updated["subject"], updated["location"], updated["type"]) == ("Visit 2", "X", "Single")
    store.backdoor_delete(ADDRESS, created["id"])
    assert store.backdoor_list(ADDRESS, "calendar") == []


def test_backdoor_contact_and_task_fields(store: Store) -> None:
    contact = store.backdoor_create(
        ADDRESS, "contacts",
        {"display_name": "Ada", "email_addresses": {"EmailAddress1": "ada@example.test"},
         "phone_numbers": {"MobilePhone": "+1"}, "physical_addresses": {"Home": {"city": "L"}}},
    )  # fmt: skip
    task = store.backdoor_create(ADDRESS, "tasks", {"subject": "T", "status": "InProgress"})

    assert contact["item_class"] == "IPM.Contact" and task["item_class"] == "IPM.Task"
    assert contact["email_addresses"] == {"EmailAddress1": "ada@example.test"}
    assert contact["physical_addresses"] == {"Home": {"city": "L"}}
    assert task["status"] == "InProgress"


def test_backdoor_refuses_unknown_mailboxes_and_foreign_items(store: Store) -> None:
    store.add_mailbox("user2@example.test")
    other = store.backdoor_create("user2@example.test", "calendar", {"subject": "theirs"})

    with pytest.raises(EwsError, match="ErrorNonExistentMailbox"):
        store.backdoor_list("nobody@example.test", "calendar")
    with pytest.raises(EwsError, match="ErrorItemNotFound"):
        store.backdoor_update(ADDRESS, other["id"], {"subject": "mine now"})


def test_sync_state_of_one_folder_is_invalid_for_another_and_when_tampered(store: Store) -> None:
    store.backdoor_create(ADDRESS, "calendar", {"subject": "A"})
    _, state, _ = store.sync_changes(calendar_id(store), None, 10)
    contacts = store.distinguished_folder(ADDRESS, "contacts")
    assert contacts is not None

    with pytest.raises(EwsError, match="ErrorInvalidSyncStateData"):
        store.sync_changes(contacts.id, state, 10)
    with pytest.raises(EwsError, match="ErrorInvalidSyncStateData"):
        store.sync_changes(calendar_id(store), state[:-6] + "AAAA==", 10)


def test_sync_states_survive_persistence_and_die_with_reset(store: Store) -> None:
    item = store.backdoor_create(ADDRESS, "calendar", {"subject": "A"})
    _, state, _ = store.sync_changes(calendar_id(store), None, 10)
    restored = Store.from_json(json.loads(json.dumps(store.to_json())))
    restored.backdoor_update(ADDRESS, item["id"], {"subject": "B"})

    changes, _, last = restored.sync_changes(calendar_id(restored), state, 10)

    assert [(kind, it.id) for kind, it in changes] == [("Update", item["id"])] and last
    folder_id = calendar_id(restored)
    restored.reset()
    with pytest.raises(EwsError, match="ErrorInvalidSyncStateData"):
        restored.sync_changes(folder_id, state, 10)


def test_sync_page_size_is_capped_at_512(store: Store) -> None:
    for n in range(600):
        store.backdoor_create(ADDRESS, "calendar", {"subject": f"S{n}"})

    changes, state, last = store.sync_changes(calendar_id(store), None, 10_000)
    rest, _, last_again = store.sync_changes(calendar_id(store), state, 10_000)

    assert (len(changes), last, len(rest), last_again) == (512, False, 88, True)


def test_change_listeners_hear_every_change_in_order_until_removed(store: Store) -> None:
    heard = []
    remove = store.add_listener(heard.append)
    contacts = store.distinguished_folder(ADDRESS, "contacts")
    assert contacts is not None

    created = store.backdoor_create(ADDRESS, "calendar", {"subject": "Visit"})
    store.backdoor_update(ADDRESS, created["id"], {"subject": "Visit, moved"})
    contact = store.backdoor_create(ADDRESS, "contacts", {"given_name": "Ada"})
    store.backdoor_delete(ADDRESS, created["id"])
    store.reset()  # listeners outlive a reset (the sandbox's control API resets between tests)
    store.add_mailbox(ADDRESS)
    after_reset = store.backdoor_create(ADDRESS, "calendar", {"subject": "Again"})
    remove()
    store.backdoor_create(ADDRESS, "calendar", {"subject": "Unheard"})

    assert [(c.mailbox, c.item_id, c.kind, c.op) for c in heard] == [
        (ADDRESS, created["id"], "CalendarItem", "create"),
        (ADDRESS, created["id"], "CalendarItem", "update"),
        (ADDRESS, contact["id"], "Contact", "create"),
        (ADDRESS, created["id"], "CalendarItem", "delete"),
        (ADDRESS, after_reset["id"], "CalendarItem", "create"),
    ]
    assert heard[2].folder_id == contacts.id
    assert [c.seq for c in heard[:4]] == sorted(c.seq for c in heard[:4])
