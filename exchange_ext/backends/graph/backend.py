"""The Microsoft Graph backend: :mod:`exchange_ext.backends.base` over Graph v1.0 (requests).

For Exchange Online, where EWS is being switched off (docs/sync-rules.md, "Backends").
App-only tokens come from :mod:`.auth`, HTTP rules (TLS, retries within the call's budget,
error mapping) from :mod:`.http`, JSON from :mod:`.items`.

How the interface maps onto Graph:

- **Calendar changes**: ``calendarView/delta`` (https://learn.microsoft.com/graph/api/event-delta).
  A delta round is bound to the start/end it began with (they are encoded in its tokens,
  https://learn.microsoft.com/graph/delta-query-events). Our range starts at the sync
  window's start, floored to a 7-day step, and spans 1,820 days (Graph's calendarView limit is
  1,825), so far-future single items stay visible. The range start is kept in the state we
  return; when the window has rolled into the next step the state is reported expired
  (:class:`SyncStateExpired`) and the caller does a full, adopting re-read over the new range —
  the same path as an evicted token. Items that left the window are then simply absent and the
  planner forgets them; nothing is deleted for leaving the window.
- Delta pages list instances (single events, occurrences, exceptions), never series masters,
  and support neither ``$expand`` nor ``$select``. So each page's ids are read again in
  ``$batch`` GETs with the tag expanded; an occurrence or exception is reported as its series
  master (type RecurringMaster) so the caller expands the series with :meth:`read_window`.
  Entries whose ``changeKey`` the caller already holds (``known``) are not read again: a page
  of our own writes costs the delta GET alone.
  An ``@removed`` entry is also what Graph sends for an event that moved *out of the range*:
  removed ids are checked with a GET, and only a 404 is reported as deleted.
- **Contacts**: ``contactFolders/{id}/contacts/delta`` of the default folder, then GETs with
  the tag (https://learn.microsoft.com/graph/api/contact-delta).
- **Window**: ``calendarView`` with the tag expanded; occurrences and exceptions get
  ``occurrence_id(seriesMasterId, originalStart)``
  (https://learn.microsoft.com/graph/api/user-list-calendarview).
- **Tags**: the single-value extended property of :mod:`.tag_property` (the EWS backend's),
  written in the create request, found with ``$filter=singleValueExtendedProperties/Any(…)``
  (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get).
- **Writes**: ``$batch`` of up to 20 (https://learn.microsoft.com/graph/json-batching). Creates
  carry a deterministic ``transactionId`` (https://learn.microsoft.com/graph/api/user-post-events);
  updates ``If-Match`` the change key read (412 → :class:`ConflictError`); deletes compare the
  change key with a GET first (Graph documents no ``If-Match`` on DELETE; it is sent too) and
  refuse a meeting with attendees (Graph would send cancellations). Events we create carry no
  attendees, so Graph sends no invitations.
- Headers on every item request: ``Prefer: outlook.timezone="UTC"`` (records hold instants;
  writes name their own zone), ``IdType="ImmutableId"`` (ids survive moves),
  ``outlook.body-content-type="text"``.
- No public folders (``supports_public_folders = False``).
- **Change notifications** (SPEC §4.3): :meth:`GraphSession.subscribe`, ``renew_subscription``
  and ``delete_subscription`` manage ``/subscriptions`` of the mailbox's events and contacts
  (https://learn.microsoft.com/graph/api/subscription-post-subscriptions); the jobs in
  :mod:`exchange_ext.jobs.push` decide when.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from exchange_ext.backends.base import (
    BackendError,
    ChangePage,
    ConflictError,
    ExchangeBackend,
    FolderKind,
    ItemChange,
    ItemDeletion,
    ItemError,
    ItemNotFound,
    ItemRejected,
    ItemUnreadable,
    KnownVersions,
    MailboxSession,
    NewItem,
    ProbeResult,
    SubscriptionRefused,
    SyncStateExpired,
    Throttled,
    Unavailable,
    WriteResult,
)
from exchange_ext.backends.graph import items as graph_items
from exchange_ext.backends.graph.auth import GraphCredentials, token_source
from exchange_ext.backends.graph.http import (
    BATCH_LIMIT,
    ITEM_ERROR_CODES,
    RETRIED_STATUSES,
    BatchRequest,
    GraphHttp,
    GraphReply,
    retry_after_seconds,
)
from exchange_ext.backends.graph.probe import probe_graph
from exchange_ext.sync.records import ExchangeItem, PsaTag, master_of, occurrence_id
from exchange_ext.sync.windows import SyncWindow

PREFER = 'outlook.timezone="UTC", IdType="ImmutableId", outlook.body-content-type="text"'
# ``Prefer: odata.maxpagesize`` of delta pages: the most each endpoint serves, so a full read
# of 5,000 events is 5 delta GETs. calendarView/delta documents the preference without a maximum
# (https://learn.microsoft.com/graph/delta-query-events, "Optional request header") and Outlook
# collections page at most 1,000 items ($top 1-1000); a larger preference is capped by Graph,
# never refused. contacts/delta serves at most 200 per page whatever is asked (Microsoft's
# answer, https://learn.microsoft.com/en-us/answers/a/2052165). Graph may send fewer
# (docs/sandbox.md, "Delta": the sandbox caps both the same way).
DELTA_PAGE_SIZE = 1000
CONTACTS_DELTA_PAGE_SIZE = 200
LIST_PAGE_SIZE = 250
RANGE_STEP_DAYS = 7
RANGE_SPAN_DAYS = 1820
_STATE_PREFIX = "graph1"
_EPOCH = dt.datetime(2000, 1, 3, tzinfo=dt.UTC)  # a Monday: range starts fall on Mondays


@dataclass(frozen=True)
class GraphSettings:
    """Everything a :class:`GraphBackend` needs; built by :mod:`.factory`."""

    credentials: GraphCredentials
    base_url: str = "https://graph.microsoft.com"
    retry_budget_seconds: float = 120.0
    timeout: float | tuple[float, float] = (10.0, 60.0)
    #: ``Prefer: odata.maxpagesize`` for delta pages (Graph may send fewer); contacts delta
    #: pages ask for at most :data:`CONTACTS_DELTA_PAGE_SIZE`.
    delta_page_size: int = DELTA_PAGE_SIZE


class GraphBackend(ExchangeBackend):
    """One Exchange Online organisation over Microsoft Graph (app-only)."""

    name = "graph"
    supports_public_folders = False

    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings

    def open_session(self, mailbox: str) -> GraphSession:
        """A session for ``mailbox``; no request is sent until the first call."""
        return GraphSession(self.settings, mailbox)

    def probe(self, mailbox: str | None) -> ProbeResult:
        """Sign-in, permissions and ``mailbox``; see :mod:`exchange_ext.backends.graph.probe`."""
        return probe_graph(self.settings.credentials, self.settings.base_url, mailbox)


def delta_range(window: SyncWindow) -> tuple[dt.datetime, dt.datetime]:
    """The calendarView/delta range for ``window``: stable for a week, then it rolls."""
    steps = (window.start.astimezone(dt.UTC) - _EPOCH).days // RANGE_STEP_DAYS
    start = _EPOCH + dt.timedelta(days=steps * RANGE_STEP_DAYS)
    return start, start + dt.timedelta(days=RANGE_SPAN_DAYS)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _State:
    """What our sync state holds: folder, range start, whether a full round is running, link."""

    folder: str
    range_start: str
    full: bool
    link: str

    def encode(self) -> str:
        phase = "full" if self.full else "inc"
        return "|".join((_STATE_PREFIX, self.folder, self.range_start, phase, self.link))

    @classmethod
    def decode(cls, text: str, root: str) -> _State:
        parts = text.split("|", 4)
        if len(parts) != 5 or parts[0] != _STATE_PREFIX or parts[3] not in ("full", "inc"):
            raise SyncStateExpired("unreadable sync state")
        if not parts[4].startswith(root + "/"):
            # Another Graph host (GRAPH_BASE_URL changed) or a damaged value.
            raise SyncStateExpired("the sync state belongs to another Graph endpoint")
        return cls(parts[1], parts[2], parts[3] == "full", parts[4])


class GraphSession(MailboxSession):
    """One mailbox over Graph. See :class:`~exchange_ext.backends.base.MailboxSession`."""

    max_batch = BATCH_LIMIT

    def __init__(self, settings: GraphSettings, mailbox: str) -> None:
        self.mailbox = mailbox.strip().lower()
        self.delta_page_size = settings.delta_page_size
        source = token_source(settings.credentials)
        self.http = GraphHttp(
            settings.base_url, source.token, mailbox=self.mailbox,
            budget_seconds=settings.retry_budget_seconds, timeout=settings.timeout,
        )  # fmt: skip
        self.user = f"/users/{quote(self.mailbox, safe='@')}"
        # Our occurrence id → Graph's instance id, learnt from calendarView reads.
        self._instances: dict[str, str] = {}

    # --- plumbing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """One public call: a fresh retry budget; anything unexpected becomes Unavailable."""
        self.http.start_call()
        try:
            yield
        except BackendError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            # A response without the fields Graph documents: never build a page from it.
            raise Unavailable(f"Microsoft Graph sent an unexpected response: {error!r}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.http.close()

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Prefer": PREFER, **extra}

    def _collection(self, folder: FolderKind) -> str:
        _no_public(folder)
        return "events" if folder is FolderKind.CALENDAR else "contacts"

    def _to_item(self, folder: FolderKind, data: dict[str, Any]) -> ExchangeItem:
        if folder is FolderKind.CALENDAR:
            return graph_items.event_item(data, self.mailbox)
        return graph_items.contact_item(data)

    def _get_items(self, folder: FolderKind, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """id → item JSON with the tag, by batched GETs; ids gone meanwhile are absent."""
        collection = self._collection(folder)
        query = urlencode({"$expand": graph_items.TAG_EXPAND})
        requests_ = [
            BatchRequest("GET", f"{self.user}/{collection}/{quote(i, safe='')}?{query}",
                         headers=self._headers())
            for i in ids
        ]  # fmt: skip
        found: dict[str, dict[str, Any]] = {}
        for item_id, reply in zip(ids, self.http.batch(requests_, replay_safe=True), strict=True):
            body = _read_reply(reply)
            if body is not None:
                found[item_id] = body
        return found

    def _list(self, url: str, params: Mapping[str, str] | None) -> list[dict[str, Any]]:
        """Every entry of a collection, following ``@odata.nextLink``."""
        entries: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            reply = self.http.get(next_url, params=params, headers=self._headers())
            body = _read_reply(reply, missing_ok=False)
            entries += list(body["value"])
            next_url, params = body.get("@odata.nextLink"), None
        return entries

    # --- reads --------------------------------------------------------------------------------

    def read_changes(
        self,
        folder: FolderKind,
        state: str | None,
        window: SyncWindow,
        known: KnownVersions | None = None,
    ) -> ChangePage:
        """One delta page, its items re-read with their tags (see the module docstring).

        With ``known``, a single event's or contact's ``changeKey`` in the delta entry is
        compared first: an item the caller holds at that version is not re-read but listed in
        ``unchanged``. (Occurrences and exceptions stand for their master, whose change key
        the entry does not carry: their master is read as before.)

        https://learn.microsoft.com/graph/api/event-delta
        https://learn.microsoft.com/graph/api/contact-delta
        """
        with self._call():
            collection = self._collection(folder)
            range_start, range_end = delta_range(window)
            range_key = _stamp(range_start) if folder is FolderKind.CALENDAR else "-"
            current = self._state(state, collection, range_key)
            url = current.link if current else self._first_delta_url(folder, range_start, range_end)
            full = current.full if current else True
            size = self.delta_page_size
            if folder is FolderKind.CONTACTS:
                size = min(size, CONTACTS_DELTA_PAGE_SIZE)
            page_size = f"odata.maxpagesize={size}"
            reply = self.http.get(url, headers=self._headers(Prefer=f"{PREFER}, {page_size}"))
            body = _read_reply(reply, missing_ok=False)
            next_link = body.get("@odata.nextLink")
            link = next_link or body.get("@odata.deltaLink")
            if not isinstance(link, str) or not isinstance(body.get("value"), list):
                raise Unavailable("a delta page without its next or delta link")
            items, deleted, unchanged = self._page_items(folder, body["value"], full, known)
            new_state = _State(collection, range_key, full and bool(next_link), link)
            return ChangePage(
                created=items if full else (),
                updated=() if full else items,
                deleted=() if full else deleted,
                new_state=new_state.encode(),
                more_available=bool(next_link),
                full_read=full,
                unchanged=unchanged,
            )

    def _state(self, state: str | None, collection: str, range_key: str) -> _State | None:
        if state is None:
            return None
        decoded = _State.decode(state, self.http.root)
        if decoded.folder != collection:
            raise SyncStateExpired("the sync state belongs to another folder")
        if decoded.range_start != range_key:
            raise SyncStateExpired("the sync window rolled on: the delta range is re-anchored")
        return decoded

    def _first_delta_url(self, folder: FolderKind, start: dt.datetime, end: dt.datetime) -> str:
        if folder is FolderKind.CONTACTS:
            return self._contacts_delta_url()
        query = urlencode({"startDateTime": _stamp(start), "endDateTime": _stamp(end)})
        return f"{self.user}/calendarView/delta?{query}"

    def _contacts_delta_url(self) -> str:
        """The documented ``/contactFolders/{id}/contacts/delta`` of the default folder.

        Graph offers no well-known name for the default contacts folder; its id is read from
        one contact's ``parentFolderId`` (one request per full read). An empty folder falls
        back to ``/contacts/delta``, which Graph serves but does not document.
        """
        params = {"$top": "1", "$select": "parentFolderId"}
        reply = self.http.get(f"{self.user}/contacts", params=params, headers=self._headers())
        entries = _read_reply(reply, missing_ok=False)["value"]
        folder_id = entries[0].get("parentFolderId") if entries else None
        if not folder_id:
            return f"{self.user}/contacts/delta"
        return f"{self.user}/contactFolders/{quote(str(folder_id), safe='')}/contacts/delta"

    def _page_items(
        self, folder: FolderKind, entries: Sequence[Any], full: bool, known: KnownVersions | None
    ) -> tuple[tuple[ExchangeItem, ...], tuple[str, ...], tuple[str, ...]]:
        """The page's items (occurrences folded into their masters), deleted ids, and the ids
        left unread because the caller holds them at the entry's ``changeKey``."""
        removed = [str(e["id"]) for e in entries if "@removed" in e]
        live = [e for e in entries if "@removed" not in e]
        unchanged = _unchanged(live, known)
        wanted = [_item_or_master(e) for e in live if str(e["id"]) not in unchanged]
        # Removed: deleted, or only out of our range (Graph says "deleted" for both).
        check = [] if full else removed
        fetched = self._get_items(folder, list(dict.fromkeys([*wanted, *check])))
        masters = [
            str(fetched[i]["seriesMasterId"])
            for i in check
            if i in fetched and fetched[i].get("seriesMasterId")
        ]
        fetched |= self._get_items(folder, [m for m in dict.fromkeys(masters) if m not in fetched])
        items: dict[str, ExchangeItem] = {}
        for item_id in [*wanted, *[i for i in check if i in fetched], *masters]:
            data = fetched.get(item_id)
            if data is None:
                continue
            if data.get("seriesMasterId") and data.get("type") in ("occurrence", "exception"):
                continue  # its master stands for it
            item = self._to_item(folder, data)
            items[item.exchange_id] = item
        gone = [i for i in [*wanted, *check] if i not in fetched]
        return tuple(items.values()), tuple(dict.fromkeys(gone)), tuple(unchanged)

    def read_window(self, folder: FolderKind, window: SyncWindow) -> list[ExchangeItem]:
        """Every item overlapping ``window``, series expanded (``calendarView``).

        https://learn.microsoft.com/graph/api/user-list-calendarview
        Contacts have no window: the whole folder (https://learn.microsoft.com/graph/api/user-list-contacts).
        """
        with self._call():
            collection = self._collection(folder)
            params = {"$expand": graph_items.TAG_EXPAND, "$top": str(LIST_PAGE_SIZE)}
            if folder is FolderKind.CONTACTS:
                return [graph_items.contact_item(d) for d in self._list(
                    f"{self.user}/{collection}", params)]  # fmt: skip
            params |= {
                "startDateTime": _stamp(window.start),
                "endDateTime": _stamp(window.recurring_end),
            }
            found = []
            for data in self._list(f"{self.user}/calendarView", params):
                item = graph_items.event_item(data, self.mailbox)
                if item.master_id is not None:
                    self._instances[item.exchange_id] = str(data["id"])
                found.append(item)
            return found

    def find_by_tag(
        self, folder: FolderKind, tags: Sequence[PsaTag]
    ) -> Mapping[PsaTag, tuple[ExchangeItem, ...]]:
        """One filtered list per tag, 20 per ``$batch`` (events: singles and masters).

        https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get
        """
        with self._call():
            collection = self._collection(folder)
            unique = list({str(tag): tag for tag in tags}.values())
            requests_ = [
                BatchRequest("GET", f"{self.user}/{collection}?" + urlencode({
                    "$filter": graph_items.tag_filter(tag), "$expand": graph_items.TAG_EXPAND,
                    "$top": "50"}), headers=self._headers())
                for tag in unique
            ]  # fmt: skip
            result: dict[PsaTag, tuple[ExchangeItem, ...]] = {}
            replies = self.http.batch(requests_, replay_safe=True)
            for tag, reply in zip(unique, replies, strict=True):
                body = _read_reply(reply, missing_ok=False)
                entries = list(body["value"])
                if body.get("@odata.nextLink"):
                    entries += self._list(str(body["@odata.nextLink"]), None)
                items = [self._to_item(folder, d) for d in entries]
                items = [i for i in items if i.psa_tag == tag]  # the value match is case-blind
                if items:
                    result[tag] = tuple(items)
            return result

    # --- writes -------------------------------------------------------------------------------

    def create(self, folder: FolderKind, items: Sequence[NewItem]) -> list[WriteResult]:
        """POST each item (with its tag and, for events, a ``transactionId``) in ``$batch``es.

        https://learn.microsoft.com/graph/api/user-post-events
        https://learn.microsoft.com/graph/api/user-post-contacts
        """
        if not items:
            return []
        with self._call():
            collection = self._collection(folder)
            requests_ = [
                BatchRequest("POST", f"{self.user}/{collection}",
                             graph_items.create_body(item.record, item.tag), self._headers())
                for item in items
            ]  # fmt: skip
            # Only creates that all carry a transactionId may be re-posted after a lost reply.
            replies = self.http.batch(requests_, replay_safe=folder is FolderKind.CALENDAR)
            return [_written(reply, "") for reply in replies]

    def update(self, folder: FolderKind, changes: Sequence[ItemChange]) -> list[WriteResult]:
        """PATCH the given field groups with ``If-Match`` of the change key read.

        https://learn.microsoft.com/graph/api/event-update
        https://learn.microsoft.com/graph/api/contact-update
        """
        if not changes:
            return []
        with self._call():
            collection = self._collection(folder)
            targets = self._resolve([change.exchange_id for change in changes])
            results: list[WriteResult | None] = [None] * len(changes)
            sent: list[int] = []
            requests_: list[BatchRequest] = []
            for index, change in enumerate(changes):
                graph_id = targets.get(change.exchange_id)
                body = graph_items.update_body(change.record, change.fields)
                if graph_id is None:
                    results[index] = WriteResult(error=ItemNotFound("the item no longer exists"))
                elif not body:
                    results[index] = WriteResult(change.exchange_id, change.change_key)
                else:
                    sent.append(index)
                    requests_.append(BatchRequest(
                        "PATCH", f"{self.user}/{collection}/{quote(graph_id, safe='')}", body,
                        self._headers(**_if_match(change.change_key))))  # fmt: skip
            for index, reply in zip(sent, self.http.batch(requests_), strict=True):
                results[index] = _written(reply, changes[index].exchange_id)
            return [result or WriteResult() for result in results]

    def delete(self, folder: FolderKind, deletions: Sequence[ItemDeletion]) -> list[WriteResult]:
        """DELETE (to Deleted Items) after checking change keys and attendees with a GET.

        https://learn.microsoft.com/graph/api/event-delete
        https://learn.microsoft.com/graph/api/contact-delete
        """
        if not deletions:
            return []
        with self._call():
            collection = self._collection(folder)
            targets = self._resolve([d.exchange_id for d in deletions])
            current = self._get_items(folder, list(dict.fromkeys(targets.values())))
            results: list[WriteResult] = [WriteResult()] * len(deletions)
            sent: list[int] = []
            requests_: list[BatchRequest] = []
            for index, deletion in enumerate(deletions):
                data = current.get(targets.get(deletion.exchange_id, ""))
                if data is None:
                    continue  # already gone: a success
                verdict = _delete_verdict(deletion, data)
                if verdict is not None:
                    results[index] = WriteResult(error=verdict)
                    continue
                sent.append(index)
                requests_.append(BatchRequest(
                    "DELETE", f"{self.user}/{collection}/{quote(str(data['id']), safe='')}",
                    headers=_if_match(deletion.change_key)))  # fmt: skip
            replies = self.http.batch(requests_, replay_safe=True)
            for index, reply in zip(sent, replies, strict=True):
                if reply.status != 404:
                    outcome = _written(reply, "")
                    results[index] = WriteResult(error=outcome.error)
            return results

    # --- occurrence ids -----------------------------------------------------------------------

    # --- change notifications -------------------------------------------------------------

    def subscribe(
        self,
        collection: str,
        notification_url: str,
        client_state: str,
        expires_at: dt.datetime,
    ) -> Subscription:
        """Create a subscription to the mailbox's ``collection`` ("events" or "contacts") for
        created, updated and deleted items; lifecycle notifications go to the same URL.

        Graph first validates ``notification_url`` (it must answer the handshake within 10 s):
        a failed validation, or any other refusal, raises :class:`SubscriptionRefused` with
        Graph's words. https://learn.microsoft.com/graph/api/subscription-post-subscriptions
        """
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": notification_url,
            "resource": f"{self.user.lstrip('/')}/{SUBSCRIBED_COLLECTIONS[collection]}",
            "expirationDateTime": _stamp(expires_at),
            "clientState": client_state,
        }
        with self._call():
            reply = self.http.send("POST", "/subscriptions", body=body)
            if not reply.ok:
                raise _subscription_refused(reply)
            return _subscription(reply)

    def renew_subscription(
        self, subscription_id: str, expires_at: dt.datetime
    ) -> Subscription | None:
        """Move the expiry of a subscription; None when Graph no longer has it (create anew).
        https://learn.microsoft.com/graph/api/subscription-update"""
        with self._call():
            reply = self.http.send(
                "PATCH", f"/subscriptions/{quote(subscription_id, safe='')}",
                body={"expirationDateTime": _stamp(expires_at)}, retry_on_reset=True,
            )  # fmt: skip
            if reply.status == 404:
                return None
            if not reply.ok:
                raise _subscription_refused(reply)
            return _subscription(reply)

    def delete_subscription(self, subscription_id: str) -> None:
        """Delete a subscription; one Graph no longer has is deleted already.
        https://learn.microsoft.com/graph/api/subscription-delete"""
        with self._call():
            reply = self.http.send(
                "DELETE", f"/subscriptions/{quote(subscription_id, safe='')}", retry_on_reset=True
            )
            if not reply.ok and reply.status != 404:
                raise _subscription_refused(reply)

    def _resolve(self, exchange_ids: Sequence[str]) -> dict[str, str]:
        """Our ids → Graph ids; occurrences no longer in their series are left out."""
        resolved = {i: i for i in exchange_ids if master_of(i) is None}
        unknown = [i for i in exchange_ids if i not in resolved and i not in self._instances]
        self._find_instances(unknown, days=1)
        self._find_instances([i for i in unknown if i not in self._instances], days=400)
        resolved |= {i: self._instances[i] for i in exchange_ids if i in self._instances}
        return resolved

    def _find_instances(self, exchange_ids: Sequence[str], *, days: int) -> None:
        """Look occurrences up among their master's instances around the original start.

        https://learn.microsoft.com/graph/api/event-list-instances
        (A moved exception may lie far from its original start: hence a wide second look.)
        """
        if not exchange_ids:
            return
        requests_ = []
        for exchange_id in exchange_ids:
            original = _original_start_of(exchange_id)
            query = urlencode({
                "startDateTime": _stamp(original - dt.timedelta(days=days)),
                "endDateTime": _stamp(original + dt.timedelta(days=days)),
                "$select": "id,type,seriesMasterId,originalStart", "$top": "1000",
            })  # fmt: skip
            master = quote(master_of(exchange_id) or "", safe="")
            requests_.append(BatchRequest("GET", f"{self.user}/events/{master}/instances?{query}",
                                          headers=self._headers()))  # fmt: skip
        for reply in self.http.batch(requests_, replay_safe=True):
            body = _read_reply(reply)
            for data in (body or {}).get("value") or ():
                if data.get("originalStart") and data.get("seriesMasterId"):
                    item_id = occurrence_id(
                        str(data["seriesMasterId"]),
                        graph_items.parse_instant(str(data["originalStart"])),
                    )
                    self._instances[item_id] = str(data["id"])


# --- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A change-notification subscription as Graph confirmed it."""

    id: str
    expires_at: dt.datetime


#: What a subscription watches, by our name: the mailbox's events or contacts.
SUBSCRIBED_COLLECTIONS = {"events": "events", "contacts": "contacts"}


def _subscription(reply: GraphReply) -> Subscription:
    body = reply.body if isinstance(reply.body, dict) else {}
    expires = dt.datetime.fromisoformat(str(body["expirationDateTime"]).replace("Z", "+00:00"))
    return Subscription(str(body["id"]), expires.astimezone(dt.UTC))


def _subscription_refused(reply: GraphReply) -> SubscriptionRefused:
    words = f"{reply.error_code}: {reply.error_message}".strip(": ")
    return SubscriptionRefused(words or f"HTTP {reply.status}")


def _no_public(folder: FolderKind) -> None:
    if folder is FolderKind.PUBLIC_CONTACTS:
        raise BackendError("public folders are not available through Microsoft Graph",
                           permanent=True)  # fmt: skip


def _unchanged(
    entries: Sequence[Mapping[str, Any]], known: KnownVersions | None
) -> dict[str, None]:
    """The ids (in page order) of the entries the caller holds at the entry's ``changeKey``.

    One ``known`` call with every single item's id; occurrences and exceptions are left out
    (they stand for their master, whose change key the entry does not carry).
    """
    own = [e for e in entries if _item_or_master(e) == str(e["id"]) and e.get("changeKey")]
    if known is None or not own:
        return {}
    versions = known(list(dict.fromkeys(str(e["id"]) for e in own)))
    return {str(e["id"]): None for e in own if versions.get(str(e["id"])) == str(e["changeKey"])}


def _item_or_master(entry: Mapping[str, Any]) -> str:
    """The id to read for a delta entry: an instance's series master, else the item."""
    if entry.get("type") in ("occurrence", "exception") and entry.get("seriesMasterId"):
        return str(entry["seriesMasterId"])
    return str(entry["id"])


def _original_start_of(exchange_id: str) -> dt.datetime:
    text = exchange_id.rpartition("|")[2]
    return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def _if_match(change_key: str) -> dict[str, str]:
    # Graph's etag is W/"<changeKey>" (the event's @odata.etag).
    return {"If-Match": f'W/"{change_key}"'} if change_key else {}


def _read_reply(reply: GraphReply, *, missing_ok: bool = True) -> dict[str, Any] | Any:
    """A read's JSON body; ``None`` for a 404 (when ``missing_ok``). A read never yields a
    partial answer: throttling past the budget raises Throttled, anything else Unavailable."""
    if reply.ok and isinstance(reply.body, dict):
        return reply.body
    if reply.status == 404 and missing_ok:
        return None
    if reply.status in RETRIED_STATUSES:
        wait = retry_after_seconds(reply.headers) or 60.0
        raise Throttled("Microsoft Graph is throttling reads", retry_after_seconds=wait)
    if reply.error_code in ITEM_ERROR_CODES:
        raise ItemUnreadable(f"{reply.error_code}: {reply.error_message}".strip(": "))
    raise Unavailable(f"Microsoft Graph answered {reply.status} {reply.error_code}".strip())


def _written(reply: GraphReply, exchange_id: str) -> WriteResult:
    """A write's reply as that item's result (never raises)."""
    if reply.ok:
        body = reply.body if isinstance(reply.body, dict) else {}
        return WriteResult(exchange_id or str(body.get("id", "")), str(body.get("changeKey", "")))
    return WriteResult(error=_item_error(reply))


def _item_error(reply: GraphReply) -> ItemError:
    code, message = reply.error_code, reply.error_message
    if reply.status == 412 or code in ("ErrorIrresolvableConflict", "ErrorChangeKeyMismatch"):
        return ConflictError("the item changed since it was read")
    if reply.status == 404:
        return ItemNotFound("the item no longer exists")
    if reply.status in RETRIED_STATUSES:
        # Still throttled when the call's budget ran out: this item waits for the next run.
        return ItemError("Microsoft Graph throttled this item; it is sent again next run")
    return ItemRejected(f"{code}: {message}".strip(": ") or f"HTTP {reply.status}")


def _delete_verdict(deletion: ItemDeletion, data: Mapping[str, Any]) -> ItemError | None:
    if deletion.change_key and str(data.get("changeKey") or "") != deletion.change_key:
        return ConflictError("the item changed since it was read")
    if data.get("attendees") and data.get("isOrganizer", True):
        # Graph sends cancellations when an organizer deletes a meeting; no way to suppress.
        return ItemRejected("a meeting with attendees: deleting it would send cancellations")
    return None
