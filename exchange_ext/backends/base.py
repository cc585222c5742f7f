"""The one interface between the sync engine and a mail server (EWS, Graph, or memory).

The engine opens a :class:`MailboxSession` per mailbox, reads changes page by page, and writes
in batches. Implementations translate every library type and exception into the types below;
nothing from exchangelib or requests crosses this module's line.

Contracts every implementation keeps (checked by ``tests/contract``):

- **Never a meeting message.** Creates, updates and deletes never send invitations, updates or
  cancellations (EWS ``SendToNone`` / ``SendOnlyToAll`` never used; Graph events carry no
  attendees).
- **Never a blind overwrite.** Updates and deletes carry the change key last read; a stale one
  yields :class:`ConflictError` for that item (no ``AlwaysOverwrite``).
- **Tag before send.** A created item carries its :class:`~exchange_ext.sync.records.PsaTag`
  in the same request, so a crash after the server committed it leaves an adoptable item.
- **Durable progress is the caller's.** A sync state returned in a :class:`ChangePage` is valid
  for resuming *after* that page; the backend never stores it. The caller persists it in the
  same transaction as that page's effects, and only then asks for the next page.
- **Per-item failures are results, not exceptions.** A batch returns one :class:`WriteResult`
  per input, in input order. Exceptions are for the whole call: auth, mailbox, throttling,
  outage, expired state.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.utils.translation import gettext  # type: ignore[import-untyped]

from exchange_ext.sync.records import ExchangeItem, FieldGroup, PsaTag, Record
from exchange_ext.sync.windows import SyncWindow


class FolderKind(StrEnum):
    """The folders the sync reads and writes (the mailbox's default ones)."""

    CALENDAR = "calendar"
    CONTACTS = "contacts"
    # The installation-wide public contacts folder (EWS only); opened through the sync account.
    PUBLIC_CONTACTS = "public_contacts"


# --- errors ---------------------------------------------------------------------------------


class Translated:
    """A class attribute in plain words, read in the active language (Django's translation).

    Each read returns a ``str`` translated for whoever is being answered: the page's viewer, an
    email's recipient (whoever activated the language). The error classes below keep their
    English text in these; ``_`` marks each for ``makemessages``.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __get__(self, instance: object, owner: type | None = None) -> str:
        if not self.text:
            return ""  # gettext("") is the catalogue's header
        try:
            return str(gettext(self.text))
        except ImproperlyConfigured:  # outside a configured Django: the English text
            return self.text


#: Marks an error class's plain words for translation (see :class:`Translated`).
_ = Translated


class BackendError(Exception):
    """Base of every error a backend raises, and of the runner's own run-stopping errors.

    Each subclass states, as class attributes, what every reader of the error needs, so that
    run summaries, the status pages and the alert emails read them rather than keeping tables
    keyed by class names:

    - ``kind``: a stable name, stored as ``MailboxSettings.last_error_kind`` (so it must not
      change when the class is renamed; :meth:`of_kind` finds the class again);
    - ``plain``: what went wrong in one run, in plain words ("" for the generic base);
    - ``alert``: the same as a lasting state, for the alert emails;
    - ``hint``: what an administrator can do about it;
    - ``permanent``: retrying without a fix won't help (the mailbox stops until its settings
      are saved again; docs/sync-rules.md, "Errors");
    - ``outage``: the error is the server being unreachable (one outage email for all).

    The credentials every mailbox shares being refused is a kind of its own,
    :class:`SharedCredentialsRefused`: every mailbox using them stops at once.

    ``message`` is the server's own text when there is one (else ``kind``); ``detail`` is that
    text only.
    """

    kind: ClassVar[str] = "BackendError"
    plain = Translated("")
    alert = Translated("")
    hint = Translated("")
    permanent: bool = False
    outage: ClassVar[bool] = False

    def __init__(self, message: str = "", *, permanent: bool | None = None) -> None:
        super().__init__(message or self.kind)
        self.detail = message
        self.message = message or self.kind
        if permanent is not None:
            self.permanent = permanent

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = cls.__name__

    @classmethod
    def of_kind(cls, kind: str) -> type[BackendError] | None:
        """The subclass whose ``kind`` is ``kind`` (as stored), or ``None``."""
        pending: list[type[BackendError]] = [cls]
        while pending:
            current = pending.pop()
            if current.kind == kind:
                return current
            pending.extend(current.__subclasses__())
        return None

    def in_plain_words(self) -> str:
        """The error for a run summary: the plain words, then the server's text if any."""
        words = " ".join(part for part in (self.plain, self.detail) if part)
        return words or str(gettext("The sync failed."))


class AuthFailed(BackendError):
    """The server refused the credentials (401, invalid grant, expired password)."""

    kind = "AuthFailed"
    plain = _("The Exchange server refused the credentials.")
    alert = plain
    hint = _("Check the credentials on the resource's MS Exchange tab.")
    #: The hint when the General tab's sync account is used for every resource.
    shared_account_hint = _("Check the sync account's username and password on the General tab.")
    permanent = True


class SharedCredentialsRefused(AuthFailed):
    """The server refused the sync account that every mailbox uses (EWS with "use these
    credentials for all users"): not this mailbox's problem but everyone's.

    Retrying it per mailbox would only lock the account out in the directory, so every mailbox
    using it stops at once until the General tab is saved (docs/sync-rules.md, "Statuses").
    Impersonation refused for one mailbox is :class:`ImpersonationDenied`, not this.
    """

    kind = "SharedCredentialsRefused"
    plain = _("The sync account's password was refused by Exchange.")
    alert = _("The sync account's credentials were refused.")
    hint = _("An administrator updates it on the General tab.")

    def stop_message(self) -> str:
        """What every stopped mailbox shows: what went wrong and who fixes it where."""
        return f"{self.plain} {self.hint}"


class AppCredentialsRefused(SharedCredentialsRefused):
    """The sign-in service refused the app registration every mailbox uses (Graph, app-only
    EWS): a wrong or expired client secret or certificate, an unknown client id or tenant, or
    a token Microsoft no longer accepts."""

    kind = "AppCredentialsRefused"
    alert = _("The sync app's credentials were refused.")
    plain = _(
        "Microsoft's sign-in service refused the sync app's credentials (tenant, client ID, "
        "client secret or certificate)."
    )
    hint = _("An administrator updates them on the General tab.")


class MailboxNotFound(BackendError):
    """The mailbox does not exist or has no Exchange mailbox."""

    kind = "MailboxNotFound"
    plain = _("The mailbox was not found on the Exchange server.")
    alert = plain
    hint = _("Check the mailbox address on the resource's MS Exchange tab.")
    permanent = True


class ImpersonationDenied(BackendError):
    """The sync account may not act for this mailbox (no ApplicationImpersonation / RBAC scope)."""

    kind = "ImpersonationDenied"
    plain = _("The sync account may not access this mailbox.")
    alert = _("The sync account may not open this mailbox.")
    hint = _(
        "Give the sync account the ApplicationImpersonation role for this mailbox, or let the "
        "resource use own credentials (General tab)."
    )
    permanent = True


class Throttled(BackendError):
    """The server asked us to slow down. The runner waits ``retry_after_seconds`` at least."""

    kind = "Throttled"
    plain = _("The Exchange server asked us to slow down; the next run retries.")
    alert = _("The Exchange server keeps asking the sync to slow down.")
    hint = _("The server keeps throttling the sync account; check its throttling policy.")

    def __init__(self, message: str = "", *, retry_after_seconds: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(BackendError):
    """Transient outage: connection refused or reset, timeout, 5xx, a truncated response."""

    kind = "Unavailable"
    plain = _("The Exchange server could not be reached; the next run retries.")
    alert = _("The Exchange server could not be reached.")
    hint = _(
        "Check that the Exchange server is running and reachable from the PSA server (server "
        "address on the General tab)."
    )
    outage = True


class ItemUnreadable(Unavailable):
    """Exchange answered, but could not read one of the items a read asked for (any per-item
    error but "not found"). The read fails without moving the sync state; the next run reads
    the item again. Never a deletion (docs/sync-rules.md, "Deletes")."""

    kind = "ItemUnreadable"
    plain = _("Exchange could not read an item; the next run reads it again and deletes nothing.")
    alert = _("Exchange could not read an item of this mailbox.")
    hint = _(
        "If this lasts, open the mailbox in Outlook and check the item named in the log; "
        "Exchange may report it as corrupt."
    )
    outage = False


class AddressRefused(BackendError):
    """The server's name resolves to an address the extension never connects to.

    Loopback, link-local (cloud metadata at 169.254.169.254 included), unspecified and
    multicast addresses are refused unless ``EXCHANGE_ALLOWED_NETWORKS`` lists them; checked on
    every new connection (:mod:`exchange_ext.backends.addresses`). The message names the host
    name, the address and why; ``host`` is the name refused.
    """

    kind = "AddressRefused"
    plain = _("The Exchange server's address is refused.")
    alert = _("The Exchange server's address resolves to a network the PSA does not connect to.")
    hint = _(
        "Check the server address on the General tab. If the server really is at that "
        "address, the operator lists its network in EXCHANGE_ALLOWED_NETWORKS."
    )
    permanent = True

    def __init__(self, message: str = "", *, host: str = "") -> None:
        super().__init__(message)
        self.host = host


class ResponseTooLarge(Unavailable):
    """A response larger or more deeply nested than the backend reads (SPEC §8: "bounded in
    size and depth"): too many bytes on the wire, too many once gzip/deflate decoded (reading
    stops at the limit, so a compression bomb never inflates in memory), or XML/JSON nested
    past the depth limit (:mod:`exchange_ext.backends.limits`).

    Like every :class:`Unavailable`, the call fails whole (no page, no sync state built from
    the response) and the next run retries; unlike it, it is not an outage of the server.
    ``read_bytes`` is how many decoded bytes had been read when reading stopped (0 when the
    response was refused before reading, or for a depth failure).
    """

    kind = "ResponseTooLarge"
    plain = _(
        "The Exchange server sent a response too large or too deeply nested to read safely; "
        "nothing was changed and the next run retries."
    )
    alert = _("The Exchange server keeps sending responses too large or too deeply nested to read.")
    hint = _(
        "Look in the mailbox for unusually large items (huge bodies) and check that nothing "
        "between the PSA server and Exchange (a proxy) alters the responses."
    )
    outage = False

    def __init__(self, message: str = "", *, read_bytes: int = 0) -> None:
        super().__init__(message)
        self.read_bytes = read_bytes


class SubscriptionRefused(BackendError):
    """Exchange refused a change-notification subscription (Graph could not validate the
    notification URL, or refused the request). Push is off for that mailbox; polling goes on."""

    kind = "SubscriptionRefused"
    plain = _("Exchange refused the change-notification subscription; polling goes on.")
    alert = _("Exchange refused the change-notification subscription.")
    hint = _(
        "Check that PSA_BASE_URL is an https address Microsoft Graph can reach and that the "
        "notification URL answers."
    )


class SubscriptionsLost(BackendError):
    """Exchange no longer knows a streaming subscription the listener held (it expired without
    a connection, or the server restarted): subscribe again, and sync, as events may be lost."""

    kind = "SubscriptionsLost"


class GuardTripped(BackendError):
    """The mass-delete guard stopped a run before it deleted many items at once.

    Never raised by a backend: the runner records it as the mailbox's error kind.
    """

    kind = "GuardTripped"
    alert = _("The sync stopped before deleting many items at once.")
    hint = _("Check the mailbox in Exchange: the sync stopped before deleting items.")


class UnexpectedError(BackendError):
    """A run stopped by something no backend reported: a bug, a database error, the worker's
    timeout. Never raised: the runner records it (docs/sync-rules.md, "Errors") with the
    exception's type only; its message and traceback go to the server log, never to a page
    or an email."""

    kind = "UnexpectedError"
    plain = _("An unexpected error stopped the sync.")
    alert = plain
    hint = _(
        "The next run retries. If it keeps failing, the server log has the details for "
        "whoever runs the PSA server."
    )

    @classmethod
    def for_exception(cls, error: BaseException) -> UnexpectedError:
        text = gettext(
            "An unexpected error stopped the sync: %(type)s. The details are in the server log."
        )
        return cls(str(text) % {"type": type(error).__name__})

    def in_plain_words(self) -> str:
        return self.detail or self.plain


class SyncOverdue(BackendError):
    """No sync of the mailbox completed for six intervals (at least an hour) although nothing
    failed: runs no longer happen (docs/sync-rules.md, "Notifications", the watchdog). Never
    raised: the watchdog records it, with what it found, as a failing status."""

    kind = "SyncOverdue"
    alert = _("No sync has completed for a long time.")
    hint = _(
        "Check that the background worker (manage.py qcluster) runs and takes tasks; the "
        "Status tab shows the queue and the latest runs."
    )


class SyncStateExpired(BackendError):
    """The stored sync state (EWS SyncState / Graph deltaLink) is invalid or expired.

    The caller drops the state and does a full, adopting re-read.
    """


class ItemError(BackendError):
    """A failure of one item in a batch; reported in its :class:`WriteResult`, never raised."""


class ItemRejected(ItemError):
    """The server refused this item (invalid value, access denied, size limit)."""

    permanent = True

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason or "rejected"


class ConflictError(ItemError):
    """The change key sent is stale: someone edited the item since we read it."""


class ItemNotFound(ItemError):
    """The item to update no longer exists. (A delete of a missing item is a success.)"""


# --- values -----------------------------------------------------------------------------------


KnownVersions = Callable[[Sequence[str]], Mapping[str, str]]
"""The caller's versions of items a change feed reports, so that a read skips our own writes.

Called with the Exchange ids a :meth:`MailboxSession.read_changes` page reports as created or
updated (once per page, all of them in one call, so the caller answers with one query); returns
``{exchange_id: change_key}`` for those the caller already holds at that exact version (its
links' stored change keys), and nothing for the others. An id whose change key in the feed
equals the one returned is not read (docs/performance.md).
"""


@dataclass(frozen=True)
class ChangePage:
    """One page of changes in a folder since a sync state.

    ``full_read`` is true when the read started without a state: ``created`` then lists every
    item of the folder (across all pages) and ``updated``/``deleted`` are empty.
    ``new_state`` resumes after this page; ``more_available`` asks for another call with it.

    ``unchanged`` lists the ids the feed reported as created or updated whose change key
    equals the one the caller's :data:`KnownVersions` returned: their content was not read and
    they are in neither ``created`` nor ``updated``. In a full read they still count as listed
    (present in the folder, not gone). Always empty when no ``known`` was passed.
    """

    created: tuple[ExchangeItem, ...]
    updated: tuple[ExchangeItem, ...]
    deleted: tuple[str, ...]
    new_state: str
    more_available: bool
    full_read: bool
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewItem:
    """An item to create, with the tag written in the same request."""

    record: Record
    tag: PsaTag


@dataclass(frozen=True)
class ItemChange:
    """An update of the given field groups only (the others are left as they are in Exchange)."""

    exchange_id: str
    change_key: str
    record: Record
    fields: frozenset[FieldGroup]


@dataclass(frozen=True)
class ItemDeletion:
    """A delete; ``change_key`` empty means "whatever version" (only for our own orphans)."""

    exchange_id: str
    change_key: str = ""


@dataclass(frozen=True)
class WriteResult:
    """The outcome for one item of a batch: the item's id and change key after the write
    (empty after a delete), or the error for this item alone."""

    exchange_id: str = ""
    change_key: str = ""
    error: ItemError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ProbeResult:
    """What :meth:`ExchangeBackend.probe` found, in words an administrator can act on.

    - ``ok``: the server was reached and accepted everything tested.
    - ``message``: one sentence for the page, success or failure (never a secret).
    - ``field_errors``: for a failure, each setting a fix would change → what is wrong with it
      (often ``message`` again). Names are the configuration's form fields as the General tab
      names them — ``server_address``, ``virtual_directory``, ``username``, ``password``,
      ``use_for_all_users``, ``tenant_id``, ``client_id``, ``client_secret``,
      ``client_certificate`` — plus ``mailbox`` for the mailbox probed. With a resource's own
      credentials (EWS delegate access), ``username`` and ``password`` are that resource's.
      Which of them a page shows, and on which of its fields, is the caller's business.
    - ``error``: the typed error behind a failure (:class:`AuthFailed`,
      :class:`MailboxNotFound`, :class:`ImpersonationDenied`, :class:`Throttled`,
      :class:`Unavailable`); ``None`` on success and when none applies (a failure found
      before any request, one item of a request refused).
    """

    ok: bool
    message: str
    field_errors: Mapping[str, str] = field(default_factory=dict)
    error: BackendError | None = None

    @classmethod
    def passed(cls, message: str) -> ProbeResult:
        return cls(True, message)

    @classmethod
    def failed(
        cls,
        message: str,
        field_errors: Mapping[str, str] | None = None,
        *,
        error: BackendError | None = None,
    ) -> ProbeResult:
        return cls(False, message, dict(field_errors or {}), error)


# --- the interface ----------------------------------------------------------------------------


class MailboxSession(abc.ABC):
    """Access to one mailbox, usable as a context manager. Not thread-safe."""

    #: The most items one write call sends in one request; callers may pass more (the
    #: session splits them), but batching at this size keeps results per request aligned.
    max_batch: int = 100

    @abc.abstractmethod
    def read_changes(
        self,
        folder: FolderKind,
        state: str | None,
        window: SyncWindow,
        known: KnownVersions | None = None,
    ) -> ChangePage:
        """Return the next page of changes in ``folder`` after ``state`` (``None``: full read).

        EWS: SyncFolderItems. Graph: ``calendarView/delta`` (bound to ``window``) or contacts
        delta. Recurring masters are reported as masters (type RecurringMaster); their
        occurrences come from :meth:`read_window`. Items outside ``window`` may be included.

        ``known`` (no content reads of our own writes): called once per page with every id the
        feed reports as created or updated (full reads included); an item whose change key in
        the feed equals the one ``known`` returns for it is not read (no GetItem, no GET, no
        ``$batch`` part) and goes into ``ChangePage.unchanged`` instead of ``created`` or
        ``updated``. Any other item is read as without ``known`` (a different or stale change
        key: someone else's edit). Deleted ids are unaffected. ``None``: every item is read.

        Raises :class:`SyncStateExpired` for an invalid/expired state, :class:`Unavailable`
        for an incomplete or malformed response (never a page built from one), and the
        session-wide errors. Never returns a ``new_state`` covering changes it did not return.
        """

    @abc.abstractmethod
    def read_window(self, folder: FolderKind, window: SyncWindow) -> list[ExchangeItem]:
        """Return every item of ``folder`` overlapping ``window``, recurring series expanded.

        Each occurrence is its own item with ``exchange_id`` =
        :func:`~exchange_ext.sync.records.occurrence_id` (master id + original start); deleted
        occurrences are absent, modified ones carry their modified content. EWS: FindItem with
        a CalendarView; Graph: ``calendarView``. Raises the session-wide errors.
        """

    @abc.abstractmethod
    def find_by_tag(
        self, folder: FolderKind, tags: Sequence[PsaTag]
    ) -> Mapping[PsaTag, tuple[ExchangeItem, ...]]:
        """Return the items in ``folder`` carrying each tag (several if duplicates exist).

        Tags with no item are absent from the result. Raises the session-wide errors.
        """

    @abc.abstractmethod
    def create(self, folder: FolderKind, items: Sequence[NewItem]) -> list[WriteResult]:
        """Create the items, each with its tag, without sending any meeting message.

        Returns one result per item in order, with the new id and change key, or an
        :class:`ItemRejected` for that item. Raises only the session-wide errors.
        """

    @abc.abstractmethod
    def update(self, folder: FolderKind, changes: Sequence[ItemChange]) -> list[WriteResult]:
        """Write the given field groups of each item if its change key is still current.

        Returns one result per change in order: the new change key, or :class:`ConflictError`
        (stale change key, nothing written), :class:`ItemNotFound` or :class:`ItemRejected`.
        Never overwrites a newer version; never sends meeting updates.
        """

    @abc.abstractmethod
    def delete(self, folder: FolderKind, deletions: Sequence[ItemDeletion]) -> list[WriteResult]:
        """Delete the items (to Deleted Items), never sending cancellations.

        Returns one result per deletion in order; an item already gone is a success. A stale
        change key gives :class:`ConflictError` (the item was edited; nothing deleted).
        """

    def close(self) -> None:
        """Release connections. Idempotent; never raises."""
        return None  # nothing to release by default (the memory backend holds no connections)

    def __enter__(self) -> MailboxSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ExchangeBackend(abc.ABC):
    """A configured connection to one Exchange organisation (EWS or Graph)."""

    #: "ews", "graph" or "memory"; recorded on sync runs.
    name: str = "backend"
    #: Whether :attr:`FolderKind.PUBLIC_CONTACTS` is available (EWS only).
    supports_public_folders: bool = False

    @abc.abstractmethod
    def open_session(self, mailbox: str) -> MailboxSession:
        """Open a session acting as ``mailbox`` (primary SMTP address).

        Raises :class:`AuthFailed`, :class:`MailboxNotFound`, :class:`ImpersonationDenied`,
        :class:`Throttled` or :class:`Unavailable` when that is already known here (an
        implementation may also defer them to the first call). Never does I/O to probe
        versions or autodiscover.
        """

    @abc.abstractmethod
    def probe(self, mailbox: str | None) -> ProbeResult:
        """Test the connection now, for an administrator waiting on a page ("Test connection").

        Signs in afresh and, with ``mailbox``, checks the access a sync of that mailbox needs
        (impersonation or delegate access, the mailbox's existence); without it, only the
        sign-in — or, where the backend cannot test anything without a mailbox (app-only
        EWS), a failure saying so. Fails fast: short timeouts and no retries, so a dead or
        silent server costs a few seconds, not a retry budget. Shares no connection, retry
        policy or cached token with the sync, and leaves nothing cached behind.

        Never raises for a server, network, TLS, trust-configuration or credential problem:
        each is a failed :class:`ProbeResult` naming the settings to fix. Secrets never appear
        in a result or a log line.
        """


#: The errors a whole call may raise (everything else is a per-item :class:`ItemError`).
SESSION_ERRORS: tuple[type[BackendError], ...] = (
    AddressRefused,
    AuthFailed,
    MailboxNotFound,
    ImpersonationDenied,
    Throttled,
    Unavailable,
    SyncStateExpired,
)

__all__ = [
    "SESSION_ERRORS",
    "AddressRefused",
    "AppCredentialsRefused",
    "AuthFailed",
    "BackendError",
    "ChangePage",
    "ConflictError",
    "ExchangeBackend",
    "FolderKind",
    "ImpersonationDenied",
    "ItemChange",
    "ItemDeletion",
    "ItemError",
    "ItemNotFound",
    "ItemRejected",
    "ItemUnreadable",
    "KnownVersions",
    "MailboxNotFound",
    "MailboxSession",
    "NewItem",
    "ProbeResult",
    "ResponseTooLarge",
    "SharedCredentialsRefused",
    "SyncOverdue",
    "SyncStateExpired",
    "SyncWindow",
    "Throttled",
    "Unavailable",
    "UnexpectedError",
    "WriteResult",
]
