"""exchangelib's exceptions → the backend's typed errors (base.py). Nothing else maps them.

Session-wide errors end a call (:func:`session_error`); per-item errors become a
:class:`~exchange_ext.backends.base.WriteResult` (:func:`item_error`). Messages keep the EWS
response code, never a request body or a credential.
"""

from __future__ import annotations

from exchangelib import errors as ews
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from exchange_ext.backends.base import (
    AppCredentialsRefused,
    AuthFailed,
    BackendError,
    ConflictError,
    ImpersonationDenied,
    ItemError,
    ItemNotFound,
    ItemRejected,
    MailboxNotFound,
    SharedCredentialsRefused,
    SyncStateExpired,
    Throttled,
    Unavailable,
)
from exchange_ext.backends.ews.guard import IncompleteResponse

DEFAULT_RETRY_AFTER = 60.0

# Response codes that concern the whole request or mailbox even when a server reports them per
# item: they end the call instead of becoming one item's result.
SESSION_LEVEL_ITEM_ERRORS: tuple[type[Exception], ...] = (
    ews.ErrorServerBusy,
    ews.ErrorNonExistentMailbox,
    ews.ErrorImpersonateUserDenied,
    ews.ErrorImpersonationDenied,
    ews.ErrorInvalidSyncStateData,
    ews.ErrorTooManyObjectsOpened,
    ews.ErrorInternalServerTransientError,
    ews.ErrorTimeoutExpired,
    ews.ErrorExceededConnectionCount,
    ews.ErrorMailboxMoveInProgress,
    ews.ErrorMailboxStoreUnavailable,
    ews.ErrorInvalidServerVersion,
    ews.ErrorIncorrectSchemaVersion,
    ews.ErrorInvalidSchemaVersionForMailboxVersion,
    ews.ErrorInvalidRequest,
    ews.ErrorSchemaValidation,
)

_CONFLICTS = (
    ews.ErrorIrresolvableConflict,
    ews.ErrorStaleObject,
    ews.ErrorChangeKeyRequired,
    ews.ErrorChangeKeyRequiredForWriteOperations,
    ews.ErrorInvalidChangeKey,
)


def _code(error: BaseException) -> str:
    return type(error).__name__


def session_error(error: BaseException) -> BackendError:
    """The typed error for an exception that ended a whole call."""
    if isinstance(error, BackendError):
        return error
    mapped = _auth_or_mailbox(error) or _throttling(error) or _state(error)
    return mapped or Unavailable(f"Exchange is unavailable: {_code(error)}: {_short(error)}")


def for_sync_account(error: BackendError, *, oauth: bool) -> BackendError:
    """``error`` as met by a session of the sync account every mailbox shares (impersonation):
    a refused sign-in is that account's, not the mailbox's, so every mailbox stops at once
    (docs/sync-rules.md, "Statuses"). Impersonation refused for one mailbox stays
    :class:`ImpersonationDenied`: it is a SOAP error of that mailbox, after a good sign-in."""
    if type(error) is not AuthFailed:
        return error
    shared = AppCredentialsRefused if oauth else SharedCredentialsRefused
    return shared(error.detail)


def _auth_or_mailbox(error: BaseException) -> BackendError | None:
    if isinstance(error, ews.UnauthorizedError):
        return AuthFailed("Exchange refused the credentials (HTTP 401)")
    if isinstance(error, OAuth2Error):
        # The token endpoint refused the app registration (invalid client, secret or tenant).
        return AuthFailed(f"the token request was refused: {error.error}")
    if isinstance(error, ews.ErrorNonExistentMailbox):
        return MailboxNotFound(f"no such mailbox: {_short(error)}")
    if isinstance(error, ews.ErrorImpersonateUserDenied | ews.ErrorImpersonationDenied):
        return ImpersonationDenied(f"impersonation denied: {_code(error)}")
    return None


def _throttling(error: BaseException) -> BackendError | None:
    if isinstance(error, ews.RateLimitError):
        return Throttled(f"throttled: {_short(error)}", retry_after_seconds=float(error.wait))
    if isinstance(error, ews.ErrorServerBusy):
        wait = float(error.back_off or DEFAULT_RETRY_AFTER)
        return Throttled(f"throttled: {_short(error)}", retry_after_seconds=wait)
    return None


def _state(error: BaseException) -> BackendError | None:
    if isinstance(error, ews.ErrorInvalidSyncStateData):
        return SyncStateExpired("the sync state is invalid or expired")
    if isinstance(error, IncompleteResponse):
        return Unavailable(f"incomplete or malformed response: {error}")
    return None


def conflict() -> ConflictError:
    return ConflictError("the item changed since it was read")


def item_error(error: BaseException) -> ItemError:
    """The per-item error for one item's failed response message."""
    if isinstance(error, _CONFLICTS):
        return ConflictError(f"the item changed since it was read ({_code(error)})")
    if isinstance(error, ews.ErrorItemNotFound):
        return ItemNotFound("the item no longer exists")
    return ItemRejected(f"{_code(error)}: {_short(error)}")


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:297] + "..."
