"""The seams between the sandbox's modules, fixed up front so they can be built side by side.

``server`` (transport) → ``operations.dispatch(request)`` → ``store`` / ``items_xml`` /
``recurrence`` / ``restrictions``. The transport never touches items; the operations never
touch HTTP. Everything here is stable API: change it only together with every user.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lxml import etree

# Namespaces of EWS (prefixes as Exchange and exchangelib use them).
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
NS_T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS_E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": NS_SOAP, "m": NS_M, "t": NS_T}


class EwsError(Exception):
    """An EWS ResponseCode raised by an operation handler for ONE response message.

    The handler that processes a list of inputs catches it per input and renders that input's
    ResponseMessage with ``ResponseClass="Error"``, ``m:MessageText`` = ``message`` and
    ``m:ResponseCode`` = ``code`` (e.g. ``ErrorItemNotFound``). Raised outside a per-input loop
    (e.g. while reading the request), ``operations.dispatch`` renders it for every message.
    """

    def __init__(self, code: str, message: str = "", *, xml: dict[str, str] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message or code
        self.xml = xml or {}  # rendered as m:MessageXml/t:Value[@Name]


class SoapFault(Exception):
    """A request-level failure rendered by ``soap`` as an HTTP 500 SOAP fault.

    Used for ErrorSchemaValidation, ErrorServerBusy (with ``back_off_ms``),
    ErrorImpersonateUserDenied, ErrorNonExistentMailbox (impersonation header) and
    ErrorInvalidServerVersion.
    """

    def __init__(self, code: str, message: str, *, back_off_ms: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.back_off_ms = back_off_ms


@dataclass(frozen=True)
class OperationRequest:
    """One authenticated, validated EWS call handed to ``operations.dispatch``.

    ``mailbox`` is the effective primary SMTP address (the impersonated one when the header
    carried ``ExchangeImpersonation``, otherwise the caller's own mailbox) and is only a
    default: folder ids may name another mailbox (``t:Mailbox`` inside DistinguishedFolderId)
    or the public folders, and the operation checks access for those.
    """

    name: str  # local name of the first child of s:Body, e.g. "SyncFolderItems"
    body: etree._Element  # that element (m:SyncFolderItems ...)
    caller: str  # the authenticated account's login name
    mailbox: str  # effective mailbox SMTP address (lower-case)
    impersonating: bool
    requested_version: str  # RequestServerVersion/@Version, e.g. "Exchange2016"
    time_zone_id: str | None = None  # TimeZoneContext/TimeZoneDefinition/@Id, if sent


@dataclass
class Outbox:
    """Messages Exchange would have sent (meeting requests/cancellations), recorded, never sent."""

    messages: list[dict[str, Any]] = field(default_factory=list)


class Dispatcher(Protocol):
    """``operations.dispatch`` has this signature.

    Returns the ``m:<Op>Response`` element (placed by ``soap`` as the only child of s:Body).
    Raises ``SoapFault`` for request-level faults. Unknown operation names raise
    ``SoapFault("ErrorInvalidRequest", ...)``.
    """

    def __call__(self, request: OperationRequest, sandbox: SandboxState) -> etree._Element: ...


class SandboxState(Protocol):
    """What operations and the control API share (one instance per running sandbox).

    ``store`` is a ``store.Store`` (thread-safe: every public method takes its lock);
    ``outbox`` records would-be-sent messages; ``now()`` is the sandbox clock (tests may move it).
    """

    store: Any
    outbox: Outbox

    def now(self) -> dt.datetime: ...
