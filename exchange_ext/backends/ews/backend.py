"""The EWS backend: :mod:`exchange_ext.backends.base` over exchangelib (pinned 5.6.0).

How it is configured (docs/sync-rules.md, "Backends"): the configured endpoint (never
autodiscover), a pinned server version and auth type (so the first request is the real
operation, no probing), TLS trust through
:func:`exchange_ext.backends.ews.tls.install_exchangelib_trust`, impersonation with the sync
account or the resource's own credentials (delegate).

Traps handled (docs/reliability.md, "#E1", "#E2", "#E3", "#S3"):

- E1 (truncated responses) and E2 (401 under fault tolerance): :mod:`.guard`.
- E3 (process-wide Protocol cache): every session builds credentials equal only to themselves,
  so it gets a Protocol of its own (its own retry policy, budget, pool and back-off clock —
  one throttled mailbox does not stall the others); ``close()`` removes it from the cache and
  closes its connections.
- exchangelib logs Authorization headers at DEBUG: its logger is kept at INFO or above.
- ``bulk_update`` raises on ``ErrorIrresolvableConflict`` after the server applied the other
  items of the chunk; the write services here return every per-item error as a result instead.
- Never a meeting message (``SendToNone`` everywhere), never ``AlwaysOverwrite``
  (``NeverOverwrite`` with the change key last read).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured
from exchangelib import (
    IMPERSONATION,
    OAUTH2,
    Account,
    CalendarItem,
    Configuration,
    Contact,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    OAuth2Credentials,
)
from exchangelib import errors as ews
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, Contacts, Folder, FolderCollection, Root
from exchangelib.items import (
    ALL_OCCURRENCES,
    ID_ONLY,
    MOVE_TO_DELETED_ITEMS,
    NEVER_OVERWRITE,
    SAVE_ONLY,
    SEND_TO_NONE,
)
from exchangelib.properties import DistinguishedFolderId, ItemId, Mailbox, RecurringMasterItemId
from exchangelib.protocol import Protocol, close_connections
from exchangelib.services import (
    CreateItem,
    DeleteItem,
    GetItem,
    GetStreamingEvents,
    SyncFolderItems,
    Unsubscribe,
    UpdateItem,
)
from exchangelib.services.common import EWSAccountService, folder_ids_element
from exchangelib.util import create_element

from exchange_ext.backends.base import (
    AddressRefused,
    BackendError,
    ChangePage,
    ExchangeBackend,
    FolderKind,
    ItemChange,
    ItemDeletion,
    ItemNotFound,
    ItemRejected,
    ItemUnreadable,
    KnownVersions,
    MailboxSession,
    NewItem,
    ProbeResult,
    SubscriptionsLost,
    Unavailable,
    WriteResult,
)
from exchange_ext.backends.ews import items as ews_items
from exchange_ext.backends.ews.errors import (
    SESSION_LEVEL_ITEM_ERRORS,
    conflict,
    for_sync_account,
    item_error,
    session_error,
)
from exchange_ext.backends.ews.guard import IncompleteResponse, SyncRetryPolicy, check_envelope
from exchange_ext.backends.ews.tls import install_exchangelib_trust
from exchange_ext.sync.records import (
    CalendarItemType,
    ExchangeItem,
    PsaTag,
    master_of,
    occurrence_id,
)
from exchange_ext.sync.windows import SyncWindow
from psa.log_redaction import remember_secret

logger = logging.getLogger(__name__)

#: The server's maximum for SyncFolderItems MaxChangesReturned.
SYNC_PAGE_SIZE = 512
#: Items per CreateItem/UpdateItem/DeleteItem/GetItem request.
BATCH_SIZE = 100
#: Tags per FindItem restriction (an Or of IsEqualTo); results are capped at 250 by Exchange.
TAG_CHUNK = 50
#: A CalendarView answer this long may be cut (EWS has no paging for it): the window is split.
VIEW_CAP = 1000
# Marks a state that resumes a read which started without a state (ChangePage.full_read).
_FULL_READ_PREFIX = "psa-full-read:"
_PUBLIC_STATE = "psa-public-folder-listing"
# What a server or network failure raises in exchangelib and below it.
_EXPECTED_ERRORS = (ews.EWSError, IncompleteResponse, requests.RequestException, OSError)
#: Exchange no longer holds (or never gave this login) a streaming subscription.
_SUBSCRIPTION_ERRORS = (
    ews.ErrorSubscriptionNotFound,
    ews.ErrorInvalidSubscription,
    ews.ErrorSubscriptionAccessDenied,
    ews.ErrorSubscriptionUnsubsribed,
)
#: The item events a streaming subscription asks for (folder-level and new-mail events are
#: of no use to the sync).
STREAM_EVENTS = ("CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent", "CopiedEvent")


@dataclass(frozen=True)
class EwsSettings:
    """Everything an :class:`EwsBackend` needs; built by :mod:`exchange_ext.backends.factory`.

    ``make_credentials`` returns a fresh exchangelib credentials object (kept out of reprs).
    ``retry_budget_seconds``: the most one call waits for throttling before ``Throttled``.
    """

    endpoint: str
    make_credentials: Callable[[], Any]
    auth_type: str
    version: Any
    access_type: str = IMPERSONATION
    retry_budget_seconds: float = 120.0
    timeout_seconds: float = 60.0
    public_folder_name: str = "PSA contacts"
    #: SyncFolderItems MaxChangesReturned (the server caps it at 512).
    sync_page_size: int = SYNC_PAGE_SIZE


class _SessionKey:
    """Makes credentials equal only to themselves: one Protocol per session or probe (trap E3).

    exchangelib caches one Protocol per process under ``(endpoint, credentials)``, keeping the
    retry policy, pool and timeout of whoever came first: a connection test sharing the sync's
    key would inherit its fault tolerance (a wrong password then looks like throttling and
    blocks for up to an hour, trap E2) or leave its own short timeout and FailFast to the sync.
    """

    _session_key: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SessionKey) and other._session_key == self._session_key

    def __hash__(self) -> int:
        return hash(self._session_key)


class SessionCredentials(_SessionKey, Credentials):
    """Basic/NTLM credentials with a per-session cache key."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._session_key = uuid.uuid4().hex
        remember_secret(password)  # never in a log line (psa/log_redaction.py)


class SessionOAuth2Credentials(_SessionKey, OAuth2Credentials):
    """Client-credentials OAuth with a per-session cache key and a configurable authority."""

    def __init__(self, *args: Any, authority: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._authority = (authority or "https://login.microsoftonline.com").rstrip("/")
        self._session_key = uuid.uuid4().hex
        remember_secret(self.client_secret)  # never in a log line (psa/log_redaction.py)

    @property
    def token_url(self) -> str:
        return f"{self._authority}/{self.tenant_id}/oauth2/v2.0/token"

    def on_token_auto_refreshed(self, access_token: Any) -> None:
        # Every token obtained (first fetch and refreshes) is a credential no log line may
        # show, whatever logs it (psa/log_redaction.py).
        remember_secret(str((access_token or {}).get("access_token") or ""))
        super().on_token_auto_refreshed(access_token)


class EwsBackend(ExchangeBackend):
    """One Exchange organisation over EWS. Sessions are cheap; each has its own connection."""

    name = "ews"
    supports_public_folders = True

    def __init__(self, settings: EwsSettings) -> None:
        self.settings = settings

    def open_session(self, mailbox: str) -> EwsSession:
        """Open a session for ``mailbox``; no request is sent until the first call."""
        keep_exchangelib_quiet()
        ews_items.register_tag_property()
        try:
            install_exchangelib_trust()
        except ImproperlyConfigured as error:
            raise untrusted_ca_file(error) from None
        return EwsSession(self.settings, mailbox)

    def probe(self, mailbox: str | None) -> ProbeResult:
        """One fail-fast EWS request; see :mod:`exchange_ext.backends.ews.probe`."""
        # Imported here: the probe module builds on this module's helpers.
        from exchange_ext.backends.ews.probe import probe_ews

        return probe_ews(self.settings, mailbox)


def untrusted_ca_file(error: ImproperlyConfigured) -> Unavailable:
    """The error for a broken ``EXCHANGE_CA_BUNDLE`` (an operator's setting: retrying without
    a fix won't help, so it is permanent)."""
    return Unavailable(f"the trusted CA file is misconfigured: {error}", permanent=True)


class _RefusedAddressReportedByUs(logging.Filter):
    """Drops exchangelib's ERROR record for a refused address.

    exchangelib logs an exception it does not know at ERROR with the whole SOAP request (item
    contents included) before re-raising it; the backend reports that refusal in plain words.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and args[0] == AddressRefused.__name__)


def keep_exchangelib_quiet() -> None:
    """Keep exchangelib's loggers at INFO or above; idempotent.

    exchangelib logs Authorization headers and whole request bodies at DEBUG: a DEBUG root
    logger would write credentials to the log.
    """
    for name in ("exchangelib", "exchangelib.util"):
        library_logger = logging.getLogger(name)
        if library_logger.getEffectiveLevel() <= logging.DEBUG:
            library_logger.setLevel(logging.INFO)
    util_logger = logging.getLogger("exchangelib.util")
    if not any(isinstance(f, _RefusedAddressReportedByUs) for f in util_logger.filters):
        util_logger.addFilter(_RefusedAddressReportedByUs())


def configuration(settings: EwsSettings, credentials: Any, retry_policy: Any) -> Configuration:
    """The exchangelib Configuration for ``settings``: the configured endpoint, the pinned
    version and auth type (no autodiscover, no version probing), one connection.

    ``credentials`` should come from ``settings.make_credentials()`` (equal only to
    themselves, so this Configuration gets a Protocol of its own: trap E3); release it with
    :func:`forget_protocol`.
    """
    return Configuration(
        service_endpoint=settings.endpoint,
        credentials=credentials,
        auth_type=settings.auth_type,
        version=settings.version,
        retry_policy=retry_policy,
        max_connections=1,
    )


def open_account(config: Configuration, mailbox: str, access_type: str, timeout: Any) -> Account:
    """An Account acting as ``mailbox`` (no request yet); ``timeout`` per HTTP request."""
    account = Account(
        mailbox,
        config=config,
        autodiscover=False,
        access_type=access_type,
        default_timezone=EWSTimeZone("UTC"),
    )
    account.protocol.TIMEOUT = timeout
    return account


def forget_protocol(config: Configuration) -> None:
    """Remove ``config``'s Protocol from exchangelib's process-wide cache and close its
    connections (trap E3); never raises."""
    with contextlib.suppress(Exception):
        protocol, _created = Protocol[config]
        del Protocol[config]
        if not isinstance(protocol, Exception):
            protocol.close()


def close_all_connections() -> None:
    """Close and forget every EWS connection cached in this process (exchangelib's Protocol
    cache), so none outlives the endpoint or credentials it was opened with."""
    close_connections()


# --- services that report every per-item error as a result -----------------------------------


class _PerItemErrors:
    """Return a failed item's error instead of raising it (exchangelib raises most of them,
    after the server already applied the other items of the request)."""

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        try:
            return super()._get_element_container(message, name)  # type: ignore[misc]
        except SESSION_LEVEL_ITEM_ERRORS:
            raise
        except ews.ResponseMessageError as error:
            return error


class _CreateItem(_PerItemErrors, CreateItem):
    """CreateItem of items already serialised by ``EwsSession._serialised``.

    exchangelib's own payload builder cleans every item again while serialising it; with the
    per-item check done first, that doubled the CPU spent on each item of a bulk export.
    """

    def get_payload(
        self, items: Any, folder: Any, message_disposition: str, send_meeting_invitations: str
    ) -> Any:
        payload = create_element(
            f"m:{self.SERVICE_NAME}",
            attrs={
                "MessageDisposition": message_disposition,
                "SendMeetingInvitations": send_meeting_invitations,
            },
        )
        if folder:
            payload.append(
                folder_ids_element(
                    folders=[folder], version=self.account.version, tag="m:SavedItemFolderId"
                )
            )
        item_elements = create_element("m:Items")
        for element in items:
            item_elements.append(element)
        payload.append(item_elements)
        return payload


class _CheckedDocuments(EWSAccountService):  # type: ignore[misc]
    """Every envelope of a stream checked as one complete SOAP envelope (E1, size, depth)
    before exchangelib parses it: GetStreamingEvents hands each document it cut out of the
    stream to this ``_get_soap_parts`` (next in the MRO of :class:`_GetStreamingEvents`)."""

    @classmethod
    def _get_soap_parts(cls, response: Any) -> Any:
        check_envelope(response.content)
        return super()._get_soap_parts(response=response)


class _GetStreamingEvents(GetStreamingEvents, _CheckedDocuments):
    pass


class _UpdateItem(_PerItemErrors, UpdateItem):
    pass


class _DeleteItem(_PerItemErrors, DeleteItem):
    pass


class _GetItem(_PerItemErrors, GetItem):
    pass


# --- the session ------------------------------------------------------------------------------


class EwsSession(MailboxSession):
    """One mailbox over EWS. See :class:`~exchange_ext.backends.base.MailboxSession`."""

    max_batch = BATCH_SIZE

    def __init__(self, settings: EwsSettings, mailbox: str) -> None:
        self.settings = settings
        self.mailbox = mailbox.lower()
        self.policy = SyncRetryPolicy(settings.retry_budget_seconds)
        self.config = configuration(settings, settings.make_credentials(), self.policy)
        self.account = open_account(
            self.config, self.mailbox, settings.access_type, settings.timeout_seconds
        )
        self._folders: dict[FolderKind, Any] = {}
        # Our occurrence id → the occurrence's EWS ItemId, learnt from CalendarView reads.
        self._occurrences: dict[str, str] = {}
        self._closed = False

    # --- plumbing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """One public call: a fresh retry budget, and every library error translated."""
        self.policy.start_call()
        try:
            yield
        except BackendError:
            raise
        except Exception as error:  # the one boundary: nothing from exchangelib escapes
            if not isinstance(error, _EXPECTED_ERRORS):
                # Not a failure exchangelib reports: maybe a bug; keep its traceback in the log.
                logger.warning("unexpected error in the EWS backend", exc_info=True)
            raise self._typed(error) from None

    def _typed(self, error: Exception) -> BackendError:
        typed = session_error(error)
        if self.settings.access_type != IMPERSONATION:
            return typed  # the resource's own login (delegate access): its own problem
        return for_sync_account(typed, oauth=self.settings.auth_type == OAUTH2)

    def close(self) -> None:
        """Forget this session's Protocol (trap E3) and close its connections; never raises."""
        if self._closed:
            return
        self._closed = True
        forget_protocol(self.config)

    def _folder(self, kind: FolderKind) -> Any:
        if kind not in self._folders:
            self._folders[kind] = self._make_folder(kind)
        return self._folders[kind]

    # --- streaming notifications (SPEC §4.3; held by exchange_ext/jobs/ews_listener.py) -------

    def subscribe_streaming(self, folders: Sequence[FolderKind]) -> str:
        """One streaming subscription to item changes in ``folders`` of this mailbox; its id.
        https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscribe-operation
        """
        with self._call():
            collection = FolderCollection(
                account=self.account, folders=[self._folder(kind) for kind in folders]
            )
            return str(collection.subscribe_to_streaming(event_types=STREAM_EVENTS))

    def unsubscribe_streaming(self, subscription_id: str) -> None:
        """End a streaming subscription; one Exchange no longer holds is ended already."""
        with self._call(), contextlib.suppress(_SUBSCRIPTION_ERRORS):
            Unsubscribe(account=self.account).get(subscription_id=subscription_id)

    def stream(self, subscription_ids: Sequence[str], minutes: int) -> Iterator[str]:
        """Hold one GetStreamingEvents connection for ``subscription_ids`` (of this login; the
        request acts as this session's mailbox) for up to ``minutes`` (1–30); yield the
        subscription id of every notification that carries item events, as it arrives.

        Returns when Exchange closes the connection (``ConnectionStatus`` Closed). Raises
        :class:`SubscriptionsLost` when Exchange no longer knows a subscription of the list
        (expired after 30 minutes without a connection, or the server restarted): events may
        have been lost, so the caller subscribes again and syncs. Anything else raises as
        every call does (a dropped connection is :class:`Unavailable`). ``close()`` from
        another thread breaks the connection off.
        https://learn.microsoft.com/exchange/client-developer/web-service-reference/getstreamingevents-operation
        """
        with self._call():
            service = _GetStreamingEvents(account=self.account)
            try:
                for notification in service.call(
                    subscription_ids=list(subscription_ids), connection_timeout=minutes
                ):
                    if notification.events:
                        yield str(notification.subscription_id)
            except _SUBSCRIPTION_ERRORS as error:
                raise SubscriptionsLost(str(error)) from None

    def _make_folder(self, kind: FolderKind) -> Any:
        if kind is FolderKind.PUBLIC_CONTACTS:
            return self._public_contacts_folder()
        # A local folder object addressed by distinguished id: no GetFolder round trip.
        root = Root(account=self.account)
        folder_class, name = (
            (Calendar, "calendar") if kind is FolderKind.CALENDAR else (Contacts, "contacts")
        )
        return folder_class(
            root=root,
            _distinguished_id=DistinguishedFolderId(
                id=name, mailbox=Mailbox(email_address=self.mailbox)
            ),
        )

    def _public_contacts_folder(self) -> Any:
        """Find, or create, the configured contacts folder under the public folders root.

        https://learn.microsoft.com/exchange/client-developer/exchange-web-services/public-folder-access-with-ews-in-exchange
        (GetFolder publicfoldersroot + FindFolder Shallow; CreateFolder when absent).
        """
        root = self.account.public_folders_root
        name = self.settings.public_folder_name
        for child in root.children:
            if child.name == name:
                return child
        folder = Folder(parent=root, name=name, folder_class="IPF.Contact")
        try:
            folder.save()
        except ews.ErrorFolderExists:
            # Another worker created it between our FindFolder and CreateFolder.
            root.refresh()
            return next(child for child in root.children if child.name == name)
        return folder

    @staticmethod
    def _item_class(kind: FolderKind) -> type:
        return CalendarItem if kind is FolderKind.CALENDAR else Contact

    # --- reads --------------------------------------------------------------------------------

    def read_changes(
        self,
        folder: FolderKind,
        state: str | None,
        window: SyncWindow,
        known: KnownVersions | None = None,
    ) -> ChangePage:
        """One SyncFolderItems page (at most 512 changes), then GetItem for the changed items.

        https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems-operation
        https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation

        SyncFolderItems is asked for ids only (it cannot return bodies); the items' content is
        read by GetItem, so a page costs one request plus one per 100 changed items, and a
        quiet folder costs exactly one request. Public folders do not support SyncFolderItems:
        their "changes" are a full listing every time (``full_read``).

        With ``known``, the ItemIds' ChangeKeys (which SyncFolderItems returns even with ids
        only) are compared first: an item the caller holds at that version is not read by
        GetItem but listed in ``unchanged``; a page of our own writes costs one request.
        """
        with self._call():
            if folder is FolderKind.PUBLIC_CONTACTS:
                return self._public_listing(known)
            return self._sync_page(folder, state, known)

    def _sync_page(
        self, kind: FolderKind, state: str | None, known: KnownVersions | None
    ) -> ChangePage:
        full_read = state is None or state.startswith(_FULL_READ_PREFIX)
        raw_state = None if state is None else state.removeprefix(_FULL_READ_PREFIX)
        service = SyncFolderItems(account=self.account)
        changes = list(
            service.call(
                folder=self._folder(kind),
                shape=ID_ONLY,
                additional_fields=None,
                sync_state=raw_state or None,
                ignore=None,
                max_changes_returned=min(self.settings.sync_page_size, SYNC_PAGE_SIZE),
                sync_scope=None,
            )
        )
        if not service.sync_state:
            raise ews.MalformedResponseError("SyncFolderItems returned no SyncState")
        listed = [(change, obj) for change, obj in changes if change in ("create", "update")]
        unchanged = _unchanged([obj for _, obj in listed if obj.id], known)
        created_ids = [o.id for c, o in listed if c == "create" and o.id and o.id not in unchanged]
        updated_ids = [o.id for c, o in listed if c == "update" and o.id and o.id not in unchanged]
        deleted = [obj.id for change, obj in changes if change == "delete"]
        read = self._read_items(kind, [*created_ids, *updated_ids])
        more = not service.includes_last_item_in_range
        new_state = service.sync_state
        if full_read and more:
            new_state = _FULL_READ_PREFIX + new_state
        # An item changed and then deleted before GetItem: report the update as a delete.
        gone = [i for i in updated_ids if i not in read]
        created = tuple(read[i] for i in created_ids if i in read)
        updated = tuple(read[i] for i in updated_ids if i in read)
        return ChangePage(
            created=(*created, *updated) if full_read else created,
            updated=() if full_read else updated,
            deleted=() if full_read else (*deleted, *gone),
            new_state=new_state,
            more_available=more,
            full_read=full_read,
            unchanged=tuple(unchanged),
        )

    def _public_listing(self, known: KnownVersions | None) -> ChangePage:
        folder = self._folder(FolderKind.PUBLIC_CONTACTS)
        refs = [item for item in folder.all().only("id", "changekey") if item.id]
        unchanged = _unchanged(refs, known)
        ids = [ref.id for ref in refs if ref.id not in unchanged]
        items = self._read_items(FolderKind.PUBLIC_CONTACTS, ids)
        listing = tuple(items[i] for i in ids if i in items)
        return ChangePage(
            listing, (), (), _PUBLIC_STATE, more_available=False, full_read=True,
            unchanged=tuple(unchanged),
        )  # fmt: skip

    def _read_items(self, kind: FolderKind, ids: Sequence[str]) -> dict[str, ExchangeItem]:
        """GetItem of ``ids`` with the synced fields; items gone meanwhile are left out.

        Only ``ErrorItemNotFound`` means gone (docs/sync-rules.md, "Deletes"): any other
        per-item error fails the whole read (:func:`_unreadable`), so the caller neither takes
        the item for deleted nor moves its sync state past it.
        """
        if not ids:
            return {}
        item_class = self._item_class(kind)
        service = _GetItem(account=self.account, chunk_size=BATCH_SIZE)
        fields = ews_items.read_field_paths(item_class)
        found: dict[str, ExchangeItem] = {}
        refs = [ItemId(id=exchange_id) for exchange_id in ids]
        results = service.call(items=refs, additional_fields=fields, shape=ID_ONLY)
        for exchange_id, result in zip(ids, results, strict=False):
            if isinstance(result, ews.ErrorItemNotFound):
                continue  # deleted meanwhile
            if isinstance(result, Exception):
                raise _unreadable(exchange_id, result)
            if not isinstance(result, item_class):
                continue  # a foreign item class in the folder (not synced)
            found[result.id] = ews_items.exchange_item(result, self.mailbox)
        return found

    def read_window(self, folder: FolderKind, window: SyncWindow) -> list[ExchangeItem]:
        """FindItem with a CalendarView, then GetItem of the items and of their masters' ids.

        https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendarview
        https://learn.microsoft.com/exchange/client-developer/web-service-reference/recurringmasteritemid

        The view spans ``window.start`` to ``window.recurring_end`` (single items starting later
        come from :meth:`read_changes`). Occurrences and exceptions are reported under
        ``occurrence_id(master id, OriginalStart)``: the master's ItemId is stable, EWS
        occurrence ids are not. The master id is read with one batched GetItem of
        ``RecurringMasterItemId`` per series (real Exchange returns no master id on an
        occurrence).
        """
        with self._call():
            if folder is not FolderKind.CALENDAR:
                return self._read_all(folder)
            refs = self._view_refs(window.start, window.recurring_end)
            items = self._read_items(folder, [ref.id for ref in refs])
            masters = self._master_ids([ref for ref in refs if ref.type != "Single"])
            return [self._window_item(ref, items, masters) for ref in refs if ref.id in items]

    def _read_all(self, kind: FolderKind) -> list[ExchangeItem]:
        ids = [item.id for item in self._folder(kind).all().only("id", "changekey") if item.id]
        items = self._read_items(kind, ids)
        return [items[i] for i in ids if i in items]

    def _view_refs(self, start: dt.datetime, end: dt.datetime) -> list[Any]:
        """The view's items (id, type, uid, original start), splitting a window that may be cut."""
        view = self._folder(FolderKind.CALENDAR).view(
            start=_utc(start), end=_utc(end), max_items=VIEW_CAP
        )
        refs = list(view.only("id", "changekey", "type", "uid", "original_start"))
        if len(refs) < VIEW_CAP or end - start <= dt.timedelta(hours=1):
            return refs
        middle = start + (end - start) / 2
        merged = {ref.id: ref for ref in self._view_refs(start, middle)}
        merged.update({ref.id: ref for ref in self._view_refs(middle, end)})
        return list(merged.values())

    def _master_ids(self, occurrence_refs: Sequence[Any]) -> dict[str, str]:
        """uid → master ItemId, one GetItem (RecurringMasterItemId) per series."""
        by_uid: dict[str, Any] = {}
        for ref in occurrence_refs:
            by_uid.setdefault(ref.uid, ref)
        if not by_uid:
            return {}
        refs = list(by_uid.values())
        ids = [RecurringMasterItemId(id=ref.id, changekey=ref.changekey) for ref in refs]
        service = _GetItem(account=self.account, chunk_size=BATCH_SIZE)
        results = list(service.call(items=ids, additional_fields=None, shape=ID_ONLY))
        for ref, result in zip(refs, results, strict=False):
            # A series whose master cannot be read must not look like single items (their
            # occurrences would then be taken for deleted); only "not found" is gone.
            if isinstance(result, Exception) and not isinstance(result, ews.ErrorItemNotFound):
                raise _unreadable(ref.id, result)
        return {
            ref.uid: result.id
            for ref, result in zip(refs, results, strict=False)
            if not isinstance(result, Exception) and result.id
        }

    def _window_item(
        self, ref: Any, items: Mapping[str, ExchangeItem], masters: Mapping[str, str]
    ) -> ExchangeItem:
        item = items[ref.id]
        master_id = masters.get(ref.uid)
        if ref.type == "Single" or master_id is None or ref.original_start is None:
            return item
        our_id = occurrence_id(master_id, ews_items.plain_utc(ref.original_start))
        self._occurrences[our_id] = ref.id
        return replace(
            item,
            exchange_id=our_id,
            calendar_item_type=CalendarItemType(ref.type),
            original_start=ews_items.plain_utc(ref.original_start),
        )

    def find_by_tag(
        self, folder: FolderKind, tags: Sequence[PsaTag]
    ) -> Mapping[PsaTag, tuple[ExchangeItem, ...]]:
        """FindItem restricted on the tag property, in chunks, then GetItem of the hits.

        https://learn.microsoft.com/exchange/client-developer/web-service-reference/finditem-operation
        """
        with self._call():
            wanted = {str(tag): tag for tag in tags}
            values = list(wanted)
            ids: list[str] = []
            for start in range(0, len(values), TAG_CHUNK):
                chunk = values[start : start + TAG_CHUNK]
                query = self._folder(folder).filter(**{f"{ews_items.TAG_ATTRIBUTE}__in": chunk})
                ids += [item.id for item in query.only("id", "changekey") if item.id]
            items = self._read_items(folder, list(dict.fromkeys(ids)))
            result: dict[PsaTag, tuple[ExchangeItem, ...]] = {}
            for item in items.values():
                tag = wanted.get(str(item.psa_tag)) if item.psa_tag else None
                if tag is not None:
                    result[tag] = (*result.get(tag, ()), item)
            return result

    # --- writes -------------------------------------------------------------------------------

    def create(self, folder: FolderKind, items: Sequence[NewItem]) -> list[WriteResult]:
        """CreateItem in batches, each item with its tag, ``SendMeetingInvitations=SendToNone``.

        https://learn.microsoft.com/exchange/client-developer/web-service-reference/createitem-operation
        """
        if not items:
            return []
        with self._call():
            results: list[WriteResult | None] = [None] * len(items)
            # Every item built first, then every item serialised: two tight loops, each over
            # the same kind of work, run measurably faster than one that alternates exchangelib
            # objects with lxml trees (docs/performance.md, "Third pass").
            made = [
                self._built(lambda new=new: ews_items.item_for(new.record, new.tag), clean=False)
                for new in items
            ]
            batch: list[tuple[int, Any]] = []
            for index, item in enumerate(made):
                built = item if isinstance(item, WriteResult) else self._serialised(item)
                if isinstance(built, WriteResult):
                    results[index] = built
                else:
                    batch.append((index, built))
            if batch:
                service = _CreateItem(account=self.account, chunk_size=BATCH_SIZE)
                replies = service.call(
                    items=[item for _, item in batch],
                    folder=self._folder(folder),
                    message_disposition=SAVE_ONLY,
                    send_meeting_invitations=SEND_TO_NONE,
                )
                for (index, _item), reply in zip(batch, replies, strict=True):
                    results[index] = _created(reply)
            return [result or WriteResult() for result in results]

    def _built(self, build: Callable[[], Any], *, clean: bool = True) -> Any:
        """An item built (and, with ``clean``, checked) by exchangelib, or the ItemRejected
        result of that item. A record exchangelib refuses (an end before its start, an unknown
        time zone) must fail alone, not the whole batch."""
        try:
            item = build()
            if clean:
                item.clean(version=self.account.version)
        except (ValueError, TypeError, ews.EWSError) as error:
            return WriteResult(error=ItemRejected(f"invalid item: {error}"))
        return item

    def _serialised(self, item: Any) -> Any:
        """``item``'s XML for :class:`_CreateItem`, or its ItemRejected result; ``to_xml``
        checks the item, so a create cleans it once, here, not twice."""
        try:
            item.account = self.account
            return item.to_xml(version=self.account.version)
        except (ValueError, TypeError, ews.EWSError) as error:
            return WriteResult(error=ItemRejected(f"invalid item: {error}"))

    def update(self, folder: FolderKind, changes: Sequence[ItemChange]) -> list[WriteResult]:
        """UpdateItem of the changed field groups, ``NeverOverwrite`` with the change key read.

        https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem-operation

        A stale change key gives ``ErrorIrresolvableConflict`` for that item (→ ConflictError);
        ``SendMeetingInvitationsOrCancellations=SendToNone``.
        """
        if not changes:
            return []
        with self._call():
            targets = self._resolve([change.exchange_id for change in changes])
            results: list[WriteResult | None] = [None] * len(changes)
            batch: list[tuple[int, Any, list[str]]] = []
            for index, change in enumerate(changes):
                target = targets.get(change.exchange_id)
                fields = ews_items.update_field_names(change.record, change.fields)
                if target is None:
                    results[index] = WriteResult(error=ItemNotFound("the item no longer exists"))
                elif not fields:
                    results[index] = WriteResult(change.exchange_id, change.change_key)
                else:
                    built = self._built(lambda c=change, t=target: self._update_target(c, t))
                    if isinstance(built, WriteResult):
                        results[index] = built
                    else:
                        batch.append((index, built, fields))
            self._send_updates(changes, batch, results)
            return [result or WriteResult() for result in results]

    def _update_target(self, change: ItemChange, ews_id: str) -> Any:
        item = ews_items.item_for_update(change.record)
        item._id = ItemId(id=ews_id, changekey=change.change_key or None)
        item.account = self.account
        return item

    def _send_updates(
        self,
        changes: Sequence[ItemChange],
        batch: list[tuple[int, Any, list[str]]],
        results: list[WriteResult | None],
    ) -> None:
        if not batch:
            return
        service = _UpdateItem(account=self.account, chunk_size=BATCH_SIZE)
        replies = service.call(
            items=[(item, fields) for _, item, fields in batch],
            conflict_resolution=NEVER_OVERWRITE,
            message_disposition=SAVE_ONLY,
            send_meeting_invitations_or_cancellations=SEND_TO_NONE,
            suppress_read_receipts=True,
        )
        for (index, _item, _fields), reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                results[index] = WriteResult(error=item_error(reply))
            else:
                _new_id, change_key = reply
                results[index] = WriteResult(changes[index].exchange_id, change_key or "")

    def delete(self, folder: FolderKind, deletions: Sequence[ItemDeletion]) -> list[WriteResult]:
        """DeleteItem (``MoveToDeletedItems``, ``SendMeetingCancellations=SendToNone``).

        https://learn.microsoft.com/exchange/client-developer/web-service-reference/deleteitem-operation

        DeleteItem does not check change keys, so deletions that carry one are first compared
        with a GetItem (ids only) of the current versions: a newer version is a ConflictError
        and is not deleted. An item already gone is a success.
        """
        if not deletions:
            return []
        with self._call():
            targets = self._resolve([deletion.exchange_id for deletion in deletions])
            keyed = [
                targets[d.exchange_id]
                for d in deletions
                if d.change_key and d.exchange_id in targets
            ]
            current = self._current_change_keys(keyed)
            results: list[WriteResult] = [WriteResult()] * len(deletions)
            batch: list[tuple[int, str]] = []
            for index, deletion in enumerate(deletions):
                verdict = _delete_verdict(deletion, targets.get(deletion.exchange_id), current)
                if isinstance(verdict, WriteResult):
                    results[index] = verdict
                elif verdict:
                    batch.append((index, verdict))
            self._send_deletes(batch, results)
            return results

    def _current_change_keys(self, ews_ids: Sequence[str]) -> dict[str, str]:
        if not ews_ids:
            return {}
        service = _GetItem(account=self.account, chunk_size=BATCH_SIZE)
        replies = service.call(items=[ItemId(id=i) for i in ews_ids], additional_fields=None,
                               shape=ID_ONLY)  # fmt: skip
        return {
            ews_id: reply.changekey or ""
            for ews_id, reply in zip(ews_ids, replies, strict=True)
            if not isinstance(reply, Exception)
        }

    def _send_deletes(self, batch: list[tuple[int, str]], results: list[WriteResult]) -> None:
        if not batch:
            return
        service = _DeleteItem(account=self.account, chunk_size=BATCH_SIZE)
        replies = service.call(
            items=[ItemId(id=ews_id) for _, ews_id in batch],
            delete_type=MOVE_TO_DELETED_ITEMS,
            send_meeting_cancellations=SEND_TO_NONE,
            affected_task_occurrences=ALL_OCCURRENCES,
            suppress_read_receipts=True,
        )
        for (index, _ews_id), reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception) and not isinstance(reply, ews.ErrorItemNotFound):
                results[index] = WriteResult(error=item_error(reply))

    # --- occurrence ids -----------------------------------------------------------------------

    def _resolve(self, exchange_ids: Sequence[str]) -> dict[str, str]:
        """Our ids → EWS ItemIds; occurrences missing from the series are left out."""
        resolved: dict[str, str] = {}
        for exchange_id in exchange_ids:
            master_id = master_of(exchange_id)
            if master_id is None:
                resolved[exchange_id] = exchange_id
                continue
            ews_id = self._occurrences.get(exchange_id) or self._find_occurrence(exchange_id)
            if ews_id:
                resolved[exchange_id] = ews_id
        return resolved

    def _find_occurrence(self, exchange_id: str) -> str | None:
        """The EWS id of an occurrence not seen in this session's CalendarView reads.

        Reads the master's uid and modified occurrences (a moved exception is found there),
        else a one-minute CalendarView at the original start, matched on uid + OriginalStart.
        """
        master_id = master_of(exchange_id) or ""
        service = _GetItem(account=self.account, chunk_size=1)
        fields = {
            FieldPath(field=CalendarItem.get_field_by_fieldname(name))
            for name in ("uid", "modified_occurrences")
        }
        master = next(iter(service.call(items=[ItemId(id=master_id)], additional_fields=fields,
                                        shape=ID_ONLY)), None)  # fmt: skip
        if master is None or isinstance(master, Exception):
            return None
        for modified in master.modified_occurrences or ():
            if (
                occurrence_id(master_id, ews_items.plain_utc(modified.original_start))
                == exchange_id
            ):
                return modified.item_id.id
        original = _original_start_of(exchange_id)
        view = self._folder(FolderKind.CALENDAR).view(
            start=_utc(original), end=_utc(original + dt.timedelta(minutes=1)),
            max_items=VIEW_CAP,
        )  # fmt: skip
        for ref in view.only("id", "uid", "original_start"):
            same_series = ref.uid == master.uid and ref.original_start is not None
            if (
                same_series
                and occurrence_id(master_id, ews_items.plain_utc(ref.original_start)) == exchange_id
            ):
                self._occurrences[exchange_id] = ref.id
                return ref.id
        return None


def _unchanged(refs: Sequence[Any], known: KnownVersions | None) -> dict[str, None]:
    """The ids (in feed order) of ``refs`` whose ChangeKey is the one ``known`` returns for
    them: the caller holds that version, so GetItem skips them. One ``known`` call."""
    if known is None or not refs:
        return {}
    versions = known(list(dict.fromkeys(ref.id for ref in refs)))
    return {ref.id: None for ref in refs if ref.changekey and versions.get(ref.id) == ref.changekey}


def _delete_verdict(
    deletion: ItemDeletion, ews_id: str | None, current: Mapping[str, str]
) -> str | WriteResult | None:
    """The EWS id to delete, a conflict result, or ``None`` when the item is already gone."""
    if ews_id is None:
        return None
    if not deletion.change_key:
        return ews_id
    if ews_id not in current:
        return None
    return ews_id if current[ews_id] == deletion.change_key else WriteResult(error=conflict())


def _original_start_of(exchange_id: str) -> dt.datetime:
    text = exchange_id.rpartition("|")[2]
    return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> EWSDateTime:
    return ews_items.ews_datetime(value, EWSTimeZone("UTC"))


def _created(result: Any) -> WriteResult:
    if isinstance(result, Exception):
        return WriteResult(error=item_error(result))
    return WriteResult(result.id, result.changekey or "")


def _unreadable(exchange_id: str, error: Exception) -> ItemUnreadable:
    """An item Exchange could not read: the read fails (retried next run), never a delete."""
    return ItemUnreadable(f"{type(error).__name__} on item …{exchange_id[-24:]}")
