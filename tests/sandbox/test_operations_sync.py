"""SyncFolderItems through real exchangelib: rounds of changes made through EWS and through the
backdoor (as a person in Outlook), paging past 512 changes, and invalid states."""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorInvalidSyncStateData
from exchangelib.properties import ItemId
from exchangelib.services import SyncFolderItems

from exchange_ext.sandbox.server import SandboxHandle

UTC = EWSTimeZone("UTC")
MAILBOX = "tech1@northwind.example"
FIELDS = ["id", "changekey", "subject", "start", "end", "last_modified_time"]


def at(hour: int, day: int = 3) -> EWSDateTime:
    return EWSDateTime(2025, 3, day, hour, tzinfo=UTC)


def sync_round(account: Account, state: str | None, **kwargs: object) -> tuple[list, str]:
    folder = account.calendar
    folder.item_sync_state = state
    changes = list(folder.sync_items(sync_state=state, only_fields=FIELDS, **kwargs))
    return changes, folder.item_sync_state


def summary(changes: list) -> list[tuple[str, str]]:
    return sorted(
        (kind, obj.id if isinstance(obj, ItemId) and kind == "delete" else obj.subject)
        for kind, obj in changes
    )


def test_sync_rounds_report_ews_and_backdoor_changes_once(
    sandbox: SandboxHandle, service_account: Account
) -> None:
    store = sandbox.state.store
    first = CalendarItem(folder=service_account.calendar, subject="A", start=at(9), end=at(10))
    first.save()
    changes, state = sync_round(service_account, None)
    assert summary(changes) == [("create", "A")]

    first.subject = "A2"
    first.save(update_fields=["subject"])
    outlook = store.backdoor_create(
        MAILBOX, "calendar", {"subject": "B", "start": "2025-03-04T09:00:00Z",
                              "end": "2025-03-04T10:00:00Z"},
    )  # fmt: skip
    store.backdoor_update(MAILBOX, outlook["id"], {"subject": "B2"})
    changes, state = sync_round(service_account, state)
    assert summary(changes) == [("create", "B2"), ("update", "A2")]

    store.backdoor_delete(MAILBOX, first.id)
    temporary = store.backdoor_create(MAILBOX, "calendar", {"subject": "gone"})
    store.backdoor_delete(MAILBOX, temporary["id"])
    changes, state = sync_round(service_account, state)
    assert summary(changes) == [("delete", first.id)]

    changes, _ = sync_round(service_account, state)
    assert changes == []


def test_more_than_512_changes_arrive_in_capped_pages_without_loss(
    sandbox: SandboxHandle, service_account: Account
) -> None:
    store = sandbox.state.store
    for n in range(1100):
        store.backdoor_create(MAILBOX, "calendar", {"subject": f"S{n}"})
    service = SyncFolderItems(account=service_account)
    seen: list[str] = []
    state, pages = None, []
    for _ in range(10):
        changes = list(service.call(folder=service_account.calendar, shape="IdOnly",
                                    additional_fields=None, sync_state=state, ignore=None,
                                    max_changes_returned=512, sync_scope=None))  # fmt: skip
        pages.append(len(changes))
        seen += [obj.id for _, obj in changes]
        state = service.sync_state
        if service.includes_last_item_in_range:
            break

    assert pages == [512, 512, 76]
    assert len(set(seen)) == 1100


def test_changes_made_while_paging_are_reported_in_the_next_round(
    sandbox: SandboxHandle, service_account: Account
) -> None:
    store = sandbox.state.store
    created = [store.backdoor_create(MAILBOX, "calendar", {"subject": f"P{n}"}) for n in range(5)]
    service = SyncFolderItems(account=service_account)

    def page(state: str | None) -> list:
        return list(service.call(folder=service_account.calendar, shape="IdOnly",
                                 additional_fields=None, sync_state=state, ignore=None,
                                 max_changes_returned=2, sync_scope=None))  # fmt: skip

    first = page(None)
    store.backdoor_update(MAILBOX, created[4]["id"], {"subject": "edited"})
    store.backdoor_delete(MAILBOX, created[0]["id"])
    rest = []
    for _ in range(5):
        rest += page(service.sync_state)
        if service.includes_last_item_in_range:
            break
    kinds = [kind for kind, _ in first + rest]
    assert kinds.count("create") == 5
    follow_up = page(service.sync_state)

    assert sorted(kind for kind, _ in follow_up) == ["delete", "update"]


def test_ignored_items_are_left_out(sandbox: SandboxHandle, service_account: Account) -> None:
    mine = CalendarItem(folder=service_account.calendar, subject="Mine", start=at(9), end=at(10))
    mine.save()
    theirs = CalendarItem(folder=service_account.calendar, subject="Theirs", start=at(9),
                          end=at(10))  # fmt: skip
    theirs.save()

    changes, _ = sync_round(service_account, None, ignore=[ItemId(mine.id, mine.changekey)])

    assert summary(changes) == [("create", "Theirs")]


@pytest.mark.parametrize("tamper", ["garbage!", "other-folder"])
def test_an_invalid_sync_state_is_refused(service_account: Account, tamper: str) -> None:
    if tamper == "other-folder":
        folder = service_account.contacts
        list(folder.sync_items(only_fields=["id"]))
        state = folder.item_sync_state
    else:
        state = tamper

    with pytest.raises(ErrorInvalidSyncStateData):
        sync_round(service_account, state)


def test_recurring_masters_are_reported_not_their_occurrences(service_account: Account) -> None:
    from exchangelib.recurrence import DailyPattern, Recurrence

    master = CalendarItem(
        folder=service_account.calendar, subject="Series", start=at(9), end=at(10),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=dt.date(2025, 3, 3),
                              number=4),
    )  # fmt: skip
    master.save()
    _, state = sync_round(service_account, None)
    occurrence = next(iter(service_account.calendar.view(at(0), at(0, day=10))))
    occurrence.subject = "Changed occurrence"
    occurrence.save(update_fields=["subject"])

    changes, _ = sync_round(service_account, state)

    assert [(kind, obj.id) for kind, obj in changes] == [("update", master.id)]


def test_move_to_trash_reports_a_delete_and_lands_in_deleted_items(
    service_account: Account,
) -> None:
    item = CalendarItem(folder=service_account.calendar, subject="Trash me", start=at(9),
                        end=at(10))  # fmt: skip
    item.save()
    _, state = sync_round(service_account, None)
    original_id = item.id

    item.move_to_trash()
    changes, _ = sync_round(service_account, state)

    assert [(kind, obj.id) for kind, obj in changes] == [("delete", original_id)]
    assert [i.subject for i in service_account.trash.all()] == ["Trash me"]
