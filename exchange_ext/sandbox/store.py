"""The in-memory Exchange: mailboxes, folders, items, change keys, change logs and sync states.

Contract:

- One ``threading.RLock`` (``Store.lock``) guards everything; every public method takes it, and
  operation handlers may hold it around a whole request so a response is one consistent snapshot.
- Items keep their properties as EWS XML: ``Item.elements`` maps the local name of each direct
  child of ``t:CalendarItem`` / ``t:Contact`` / ``t:Task`` (``"Subject"``, ``"Start"`` …) to the
  serialized element, and ``Item.extended`` maps a normalized extended-property key (see
  ``items_xml.extended_key``) to its serialized ``t:ExtendedProperty``. That keeps every property
  round-trip exact and lets ``items_xml`` render them in schema order. Datetimes are stored in
  UTC (``Z``), as Exchange returns them.
- Every change assigns a new ChangeKey and LastModifiedTime and appends ``(seq, item_id, op)`` to
  the folder's change log (``op`` is ``create``/``update``/``delete``; ``seq`` is one store-wide
  counter, so it increases monotonically within each folder).
- Change listeners (``add_listener``) hear every logged change as a ``Change`` while the lock is
  held, in ``seq`` order: they must only record it and return (push notifications, EWS streaming
  and Graph subscriptions, queue their own delivery), never call back into the store.
- A sync state is opaque: base64 of ``{folder, base, target, offset}`` plus an HMAC with a
  per-store secret, so a tampered state, another folder's state or one from before a
  ``reset()`` is rejected with ``ErrorInvalidSyncStateData``.
- Occurrences of a recurring master are not items: a modified occurrence is an
  ``OccurrenceException`` held by its master, a deleted one an original start in
  ``Item.deleted_occurrences``. Changing either changes the master (SyncFolderItems reports
  masters, never occurrences).

The backdoor (``backdoor_*``) edits items as a person in Outlook would, so the changes show up
in SyncFolderItems; it speaks plain JSON dicts, documented in ``items_xml.fields_to_elements``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from exchange_ext.sandbox import items_xml
from exchange_ext.sandbox.contract import EwsError

# Distinguished folders every mailbox has: name → (display name as Exchange names it,
# FolderClass, parent distinguished name, EWS folder element).
MAILBOX_FOLDERS: dict[str, tuple[str, str | None, str | None, str]] = {
    "root": ("Root", None, None, "Folder"),
    "msgfolderroot": ("Top of Information Store", "IPF.Note", "root", "Folder"),
    "calendar": ("Calendar", "IPF.Appointment", "msgfolderroot", "CalendarFolder"),
    "contacts": ("Contacts", "IPF.Contact", "msgfolderroot", "ContactsFolder"),
    "tasks": ("Tasks", "IPF.Task", "msgfolderroot", "TasksFolder"),
    "inbox": ("Inbox", "IPF.Note", "msgfolderroot", "Folder"),
    "deleteditems": ("Deleted Items", "IPF.Note", "msgfolderroot", "Folder"),
}
PUBLIC_ROOT = "publicfoldersroot"
# Item kind (EWS element name) → (ItemClass, folder kind it belongs to).
ITEM_KINDS: dict[str, str] = {
    "CalendarItem": "IPM.Appointment",
    "Contact": "IPM.Contact",
    "Task": "IPM.Task",
}
FOLDER_ELEMENT_BY_CLASS = {
    "IPF.Appointment": "CalendarFolder",
    "IPF.Contact": "ContactsFolder",
    "IPF.Task": "TasksFolder",
}
MAX_SYNC_CHANGES = 512  # Exchange's cap on SyncFolderItems/MaxChangesReturned


@dataclass(frozen=True)
class Change:
    """One logged change, as a change listener hears it."""

    seq: int
    mailbox: str | None  # None for public folders
    folder_id: str
    item_id: str
    kind: str  # CalendarItem / Contact / Task
    op: str  # create / update / delete


@dataclass
class Folder:
    id: str
    changekey: str
    mailbox: str | None  # None for public folders
    parent_id: str | None
    display_name: str
    folder_class: str | None
    distinguished: str | None = None
    log: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, item_id, op)

    @property
    def element_name(self) -> str:
        """The EWS element for this folder (t:CalendarFolder, t:ContactsFolder, ...)."""
        if self.distinguished in MAILBOX_FOLDERS:
            return MAILBOX_FOLDERS[self.distinguished][3]
        return FOLDER_ELEMENT_BY_CLASS.get(self.folder_class or "", "Folder")


@dataclass
class OccurrenceException:
    """A modified occurrence: property overrides of its master, keyed by its original start."""

    id: str
    changekey: str
    original_start: str  # ISO 8601 UTC, "...Z"
    elements: dict[str, str] = field(default_factory=dict)
    modified: str = ""


@dataclass
class Item:
    id: str
    changekey: str
    kind: str  # "CalendarItem" | "Contact" | "Task"
    folder_id: str
    mailbox: str | None
    created: str  # ISO 8601 UTC
    modified: str
    elements: dict[str, str] = field(default_factory=dict)
    extended: dict[str, str] = field(default_factory=dict)
    exceptions: dict[str, OccurrenceException] = field(default_factory=dict)
    deleted_occurrences: list[str] = field(default_factory=list)

    @property
    def item_class(self) -> str:
        return ITEM_KINDS.get(self.kind, "IPM.Item")


def _new_id(prefix: str) -> str:
    # Exchange ids are long opaque base64 strings; ours only need to be unique and opaque.
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


def _new_changekey() -> str:
    return "CQAAABYAAA" + base64.b64encode(secrets.token_bytes(12)).decode()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """The whole Exchange organisation: mailboxes by lower-case SMTP address plus public folders."""

    def __init__(self, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.reset()

    # ----------------------------------------------------------------- mailboxes and folders

    def reset(self) -> None:
        """Forget everything; sync states issued before become invalid (new secret, new ids)."""
        with self.lock:
            self._secret = secrets.token_bytes(32)
            self._seq = itertools.count(1)
            self._last_seq = 0
            self._mailboxes: dict[str, str] = {}  # address → display name
            self._folders: dict[str, Folder] = {}
            self._items: dict[str, Item] = {}
            # Items every read of fails with ErrorItemCorrupt (EWS) / a 500 (Graph), while the
            # change feeds still list them: an item Exchange cannot read is not a deleted one.
            self.unreadable: set[str] = set()
            self._listeners: list[Callable[[Change], None]] = getattr(self, "_listeners", [])
            self._public_root = self._make_folder(None, None, "IPM_SUBTREE", None, PUBLIC_ROOT)

    def now(self) -> dt.datetime:
        return self._clock()

    def add_mailbox(self, address: str, display_name: str = "") -> None:
        """Create a mailbox with its distinguished folders; a no-op if it exists."""
        address = address.lower()
        with self.lock:
            if address in self._mailboxes:
                return
            self._mailboxes[address] = display_name or address.split("@")[0]
            ids: dict[str, str] = {}
            for name, (label, folder_class, parent, _element) in MAILBOX_FOLDERS.items():
                parent_id = ids[parent] if parent else None
                ids[name] = self._make_folder(address, parent_id, label, folder_class, name).id

    def has_mailbox(self, address: str) -> bool:
        with self.lock:
            return address.lower() in self._mailboxes

    def mailboxes(self) -> list[dict[str, str]]:
        """``[{"address": ..., "display_name": ...}]`` sorted by address."""
        with self.lock:
            return [{"address": a, "display_name": n} for a, n in sorted(self._mailboxes.items())]

    def display_name(self, address: str) -> str:
        with self.lock:
            return self._mailboxes.get(address.lower(), address)

    def _make_folder(
        self,
        mailbox: str | None,
        parent_id: str | None,
        name: str,
        folder_class: str | None,
        distinguished: str | None = None,
    ) -> Folder:
        folder = Folder(
            _new_id("AAMkF"), _new_changekey(), mailbox, parent_id, name, folder_class,
            distinguished,
        )  # fmt: skip
        self._folders[folder.id] = folder
        return folder

    def distinguished_folder(self, mailbox: str | None, name: str) -> Folder | None:
        """The distinguished folder ``name`` of ``mailbox`` (``publicfoldersroot`` ignores it)."""
        with self.lock:
            if name == PUBLIC_ROOT:
                return self._public_root
            if mailbox is None:
                return None
            mailbox = mailbox.lower()
            for folder in self._folders.values():
                if folder.mailbox == mailbox and folder.distinguished == name:
                    return folder
            return None

    def folder(self, folder_id: str) -> Folder | None:
        with self.lock:
            return self._folders.get(folder_id)

    def resolve_folder(self, mailbox: str, ref: str) -> Folder:
        """A folder by distinguished name (in ``mailbox``) or by id; raises ErrorFolderNotFound."""
        with self.lock:
            found = self.distinguished_folder(mailbox, ref) or self._folders.get(ref)
            if found is None:
                raise EwsError("ErrorFolderNotFound", f"The folder {ref!r} was not found.")
            return found

    def child_folders(self, folder_id: str, deep: bool = False) -> list[Folder]:
        """Children of a folder (all descendants when ``deep``), in creation order."""
        with self.lock:
            children = [f for f in self._folders.values() if f.parent_id == folder_id]
            if not deep:
                return children
            result: list[Folder] = []
            for child in children:
                result.append(child)
                result.extend(self.child_folders(child.id, deep=True))
            return result

    def create_folder(self, parent_id: str, display_name: str, folder_class: str | None) -> Folder:
        """Create a child folder; a sibling with the same name raises ErrorFolderExists."""
        with self.lock:
            parent = self._folders.get(parent_id)
            if parent is None:
                raise EwsError("ErrorFolderNotFound", "The parent folder was not found.")
            for sibling in self.child_folders(parent_id):
                if sibling.display_name.lower() == display_name.lower():
                    raise EwsError("ErrorFolderExists", "A folder with that name already exists.")
            return self._make_folder(parent.mailbox, parent_id, display_name, folder_class)

    def item_count(self, folder_id: str) -> int:
        with self.lock:
            return sum(1 for i in self._items.values() if i.folder_id == folder_id)

    # ----------------------------------------------------------------- items

    def item(self, item_id: str) -> Item | None:
        with self.lock:
            return self._items.get(item_id)

    def items_in(self, folder_id: str) -> list[Item]:
        """The items of a folder in creation order (recurring masters, not occurrences)."""
        with self.lock:
            return [i for i in self._items.values() if i.folder_id == folder_id]

    def add_listener(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` with every change from now on (under the lock; see the module
        contract); returns the function that removes it. Listeners survive ``reset()``."""
        with self.lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _log(self, folder_id: str, item_id: str, op: str, kind: str) -> None:
        seq = next(self._seq)
        self._last_seq = seq
        folder = self._folders[folder_id]
        folder.log.append((seq, item_id, op))
        if self._listeners:
            change = Change(seq, folder.mailbox, folder_id, item_id, kind, op)
            for listener in list(self._listeners):
                listener(change)

    def create_item(
        self,
        folder_id: str,
        kind: str,
        elements: dict[str, str],
        extended: dict[str, str] | None = None,
    ) -> Item:
        """Store a new item in a folder and log a ``create``. A calendar item without a
        ``UID`` gets one, as Exchange gives every calendar item, whoever creates it."""
        elements = dict(elements)
        if kind == "CalendarItem" and "UID" not in elements:
            uid = items_xml.text_element("UID", secrets.token_hex(16).upper())
            elements["UID"] = items_xml.to_string(uid)
        with self.lock:
            folder = self._folders[folder_id]
            stamp = _iso(self.now())
            item = Item(
                _new_id("AAMkI"), _new_changekey(), kind, folder_id, folder.mailbox, stamp, stamp,
                elements, dict(extended or {}),
            )  # fmt: skip
            self._items[item.id] = item
            self._log(folder_id, item.id, "create", kind)
            return item

    def touch(self, item: Item) -> None:
        """Record that ``item`` (already mutated in place) changed: new ChangeKey, log entry."""
        with self.lock:
            item.changekey = _new_changekey()
            item.modified = _iso(self.now())
            self._log(item.folder_id, item.id, "update", item.kind)

    def update_item(
        self,
        item: Item,
        set_elements: dict[str, str] | None = None,
        delete_elements: Iterable[str] = (),
        set_extended: dict[str, str] | None = None,
        delete_extended: Iterable[str] = (),
    ) -> Item:
        """Apply property changes to an item and ``touch`` it."""
        with self.lock:
            item.elements.update(set_elements or {})
            for name in delete_elements:
                item.elements.pop(name, None)
            item.extended.update(set_extended or {})
            for key in delete_extended:
                item.extended.pop(key, None)
            self.touch(item)
            return item

    def delete_item(self, item_id: str) -> Item:
        """Remove an item for good and log a ``delete``; raises ErrorItemNotFound."""
        with self.lock:
            item = self._items.pop(item_id, None)
            if item is None:
                raise EwsError(
                    "ErrorItemNotFound", "The specified object was not found in the store."
                )
            self._log(item.folder_id, item.id, "delete", item.kind)
            return item

    def move_item(self, item_id: str, folder_id: str) -> Item:
        """Move an item: like Exchange, it gets a new id there and its old folder logs a delete."""
        with self.lock:
            item = self.delete_item(item_id)
            return self.create_item(folder_id, item.kind, item.elements, item.extended)

    def modify_occurrence(
        self, master: Item, original_start: str, elements: dict[str, str]
    ) -> OccurrenceException:
        """Create or update the exception for one occurrence of ``master``; touches the master."""
        with self.lock:
            exc = master.exceptions.get(original_start)
            if exc is None:
                exc = OccurrenceException(_new_id("AAMkX"), "", original_start)
                master.exceptions[original_start] = exc
            exc.elements.update(elements)
            exc.changekey = _new_changekey()
            exc.modified = _iso(self.now())
            self.touch(master)
            return exc

    def delete_occurrence(self, master: Item, original_start: str) -> None:
        """Delete one occurrence of ``master`` (it joins DeletedOccurrences); touches the master."""
        with self.lock:
            master.exceptions.pop(original_start, None)
            if original_start not in master.deleted_occurrences:
                master.deleted_occurrences.append(original_start)
            self.touch(master)

    def exception_by_id(self, exception_id: str) -> tuple[Item, OccurrenceException] | None:
        with self.lock:
            for item in self._items.values():
                for exc in item.exceptions.values():
                    if exc.id == exception_id:
                        return item, exc
            return None

    # ----------------------------------------------------------------- sync states

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()[:32]

    def encode_sync_state(self, folder_id: str, base: int, target: int, offset: int) -> str:
        payload = json.dumps({"f": folder_id, "b": base, "t": target, "o": offset}).encode()
        return base64.b64encode(payload + b"." + self._sign(payload).encode()).decode()

    def decode_sync_state(self, folder_id: str, state: str) -> tuple[int, int, int]:
        """``(base, target, offset)`` of this folder's state; else ErrorInvalidSyncStateData."""
        invalid = EwsError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt.")
        try:
            raw = base64.b64decode(state.encode(), validate=True)
            payload, _, signature = raw.rpartition(b".")
            if not hmac.compare_digest(signature.decode(), self._sign(payload)):
                raise invalid
            data = json.loads(payload)
        except (ValueError, UnicodeError) as exc:
            raise invalid from exc
        if data.get("f") != folder_id or not data["b"] <= data["t"] <= self._last_seq:
            raise invalid
        return int(data["b"]), int(data["t"]), int(data["o"])

    def sync_changes(
        self, folder_id: str, state: str | None, max_changes: int, ignore: set[str] | None = None
    ) -> tuple[list[tuple[str, Any]], str, bool]:
        """The next page of changes of a folder since ``state``.

        Returns ``(changes, new_state, includes_last)`` where each change is ``("Create", item)``,
        ``("Update", item)`` or ``("Delete", item_id)``. Changes in the range (base, target] are
        coalesced per item (create+update → Create, create+delete → nothing) and paged in a
        stable order, so a client that pages through gets every item exactly once per range;
        changes made while it pages are reported in the next range.
        """
        # https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems-operation
        with self.lock:
            max_changes = max(1, min(max_changes, MAX_SYNC_CHANGES))
            if state:
                base, target, offset = self.decode_sync_state(folder_id, state)
            else:
                base, target, offset = 0, self._last_seq, 0
            if offset == 0:
                target = self._last_seq
            candidates = self._sync_candidates(folder_id, base, target)
            changes: list[tuple[str, Any]] = []
            position = offset
            while position < len(candidates) and len(changes) < max_changes:
                item_id, created_in_range = candidates[position]
                position += 1
                change = self._classify(folder_id, item_id, created_in_range)
                if change is not None and item_id not in (ignore or set()):
                    changes.append(change)
            if position >= len(candidates):
                return changes, self.encode_sync_state(folder_id, target, target, 0), True
            return changes, self.encode_sync_state(folder_id, base, target, position), False

    def _sync_candidates(self, folder_id: str, base: int, target: int) -> list[tuple[str, bool]]:
        """Items with changes in (base, target], in order of first change, with 'created then'."""
        first: dict[str, bool] = {}
        for seq, item_id, op in self._folders[folder_id].log:
            if base < seq <= target and item_id not in first:
                first[item_id] = op == "create"
        return list(first.items())

    def _classify(self, folder_id: str, item_id: str, created: bool) -> tuple[str, Any] | None:
        item = self._items.get(item_id)
        exists = item is not None and item.folder_id == folder_id
        if exists:
            return ("Create" if created else "Update", item)
        return None if created else ("Delete", item_id)

    # ----------------------------------------------------------------- backdoor (control API)

    def _backdoor_folder(self, address: str, folder: str) -> Folder:
        address = address.lower()
        if address not in self._mailboxes:
            raise EwsError("ErrorNonExistentMailbox", f"No mailbox {address}.")
        found = self.resolve_folder(address, folder)
        if found.mailbox not in (address, None):
            raise EwsError("ErrorAccessDenied", "That folder belongs to another mailbox.")
        return found

    def _backdoor_item(self, address: str, item_id: str) -> Item:
        item = self._items.get(item_id)
        if item is None or item.mailbox not in (address.lower(), None):
            raise EwsError("ErrorItemNotFound", f"No item {item_id} in {address}.")
        return item

    def backdoor_list(self, address: str, folder: str) -> list[dict[str, Any]]:
        """The items of a mailbox folder (distinguished name or id) as JSON dicts."""
        with self.lock:
            target = self._backdoor_folder(address, folder)
            return [items_xml.item_to_fields(i) for i in self.items_in(target.id)]

    def backdoor_create(self, address: str, folder: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create an item from a JSON dict (kind from ``item_class`` or the folder class)."""
        with self.lock:
            target = self._backdoor_folder(address, folder)
            kind = items_xml.kind_for(fields.get("item_class"), target.folder_class)
            elements, extended = items_xml.fields_to_elements(kind, fields)
            item = self.create_item(target.id, kind, elements, extended)
            return items_xml.item_to_fields(item)

    def backdoor_update(self, address: str, item_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change the given fields of an item (``None`` deletes a field); new ChangeKey."""
        with self.lock:
            item = self._backdoor_item(address, item_id)
            elements, extended = items_xml.fields_to_elements(item.kind, fields)
            cleared = [items_xml.element_for_field(k) for k, v in fields.items() if v is None]
            self.update_item(item, elements, [c for c in cleared if c], extended)
            return items_xml.item_to_fields(item)

    def backdoor_unreadable(self, address: str, item_id: str, unreadable: bool = True) -> None:
        """Make every read of an item fail (or read again), as a corrupt item does."""
        with self.lock:
            item = self._backdoor_item(address, item_id)
            (self.unreadable.add if unreadable else self.unreadable.discard)(item.id)

    def backdoor_delete(self, address: str, item_id: str) -> None:
        """Hard-delete an item (a ``Delete`` in the next SyncFolderItems)."""
        with self.lock:
            self.delete_item(self._backdoor_item(address, item_id).id)

    # ----------------------------------------------------------------- persistence

    def to_json(self) -> dict[str, Any]:
        """Everything as JSON-able data (for ``exchange_sandbox --state FILE``)."""
        with self.lock:
            return {
                "version": 1,
                "secret": self._secret.hex(),
                "last_seq": self._last_seq,
                "mailboxes": dict(self._mailboxes),
                "public_root": self._public_root.id,
                "folders": [asdict(f) for f in self._folders.values()],
                "items": [asdict(i) for i in self._items.values()],
            }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], clock: Callable[[], dt.datetime] | None = None
    ) -> Store:
        """The inverse of ``to_json``; sync states issued before saving stay valid."""
        store = cls(clock)
        with store.lock:
            store._secret = bytes.fromhex(data["secret"])
            store._last_seq = int(data["last_seq"])
            store._seq = itertools.count(store._last_seq + 1)
            store._mailboxes = dict(data["mailboxes"])
            store._folders = {}
            for raw in data["folders"]:
                raw = copy.deepcopy(raw)
                raw["log"] = [tuple(entry) for entry in raw["log"]]
                store._folders[raw["id"]] = Folder(**raw)
            store._public_root = store._folders[data["public_root"]]
            store._items = {}
            for raw in data["items"]:
                raw = copy.deepcopy(raw)
                raw["exceptions"] = {
                    k: OccurrenceException(**v) for k, v in raw["exceptions"].items()
                }
                store._items[raw["id"]] = Item(**raw)
        return store
