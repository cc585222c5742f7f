"""The EWS connection test (``EwsBackend.probe``, see ``ExchangeBackend.probe`` in base.py).

One request, with the backend's own settings (endpoint, pinned version, auth type, access
type and credentials, as :mod:`exchange_ext.backends.factory` built them for syncing) but
exchangelib's ``FailFast`` policy and :data:`PROBE_TIMEOUT`:

- with a mailbox, GetFolder of its root: reach, TLS, sign-in, impersonation or delegate access
  and the mailbox's existence;
- without one, ResolveNames, which proves the sign-in without opening a mailbox
  (https://learn.microsoft.com/exchange/client-developer/web-service-reference/resolvenames).
  App-only (OAuth) EWS must impersonate the mailbox it opens, so it cannot be tested without
  one.

The credentials come fresh from ``settings.make_credentials()`` (equal only to themselves), so
the probe gets a Protocol of its own — it neither inherits the sync's retry policy (a wrong
password would look like throttling) nor leaves its FailFast and short timeout to it — and
removes it from exchangelib's cache afterwards (docs/reliability.md, E2 and E3).

Every failure becomes plain words naming the settings to fix (``ProbeResult.field_errors``)
and the typed error :func:`~exchange_ext.backends.ews.errors.session_error` gives it. Secrets
never appear in a message or a log line. Nothing is named ``test_*`` (pytest).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from exchangelib import IMPERSONATION, OAUTH2, FailFast
from exchangelib import errors as ews_errors
from exchangelib.protocol import Protocol
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from exchange_ext.backends.base import AddressRefused, ProbeResult
from exchange_ext.backends.ews.backend import (
    EwsSettings,
    configuration,
    forget_protocol,
    keep_exchangelib_quiet,
    open_account,
    untrusted_ca_file,
)
from exchange_ext.backends.ews.errors import session_error
from exchange_ext.backends.ews.tls import install_exchangelib_trust
from exchange_ext.backends.tls import CA_BUNDLE_ENV

logger = logging.getLogger(__name__)

# (connect, read) seconds per request. The probe sends one request, so a dead or silent server
# costs at most ~4 s: the admin waits for the page, and the whole probe must stay under 5 s.
PROBE_TIMEOUT = (2.5, 4.0)

SELF_SIGNED_MESSAGE = (
    "The server's certificate is self-signed; self-signed certificates are refused. Install a "
    "certificate from a trusted CA, or add your private CA with EXCHANGE_CA_BUNDLE."
)
NEEDS_MAILBOX_MESSAGE = "Enable a resource first: an app-only connection is tested on a mailbox."

_BASIC_CREDENTIAL_FIELDS = ("username", "password")
_APP_CREDENTIAL_FIELDS = ("tenant_id", "client_id", "client_secret")


@dataclass(frozen=True)
class _Probe:
    """What the failure messages need to know about the probe that failed."""

    url: str
    server: str
    mailbox: str | None
    oauth: bool
    impersonating: bool
    secrets: tuple[str, ...]


def probe_ews(settings: EwsSettings, mailbox: str | None) -> ProbeResult:
    """Test ``settings`` with one fail-fast request (see the module); never raises.

    Field names in a failure: ``server_address`` (reach, TLS, an address refused by
    :mod:`exchange_ext.backends.addresses`), ``virtual_directory`` (no EWS
    endpoint there, a redirect), ``username``/``password`` (Basic) or ``tenant_id``/
    ``client_id``/``client_secret`` (OAuth) for refused credentials, ``use_for_all_users``
    for a denied impersonation (the shared sync account), ``mailbox`` for a mailbox that does
    not exist or, with delegate access, refuses the credentials' owner.
    """
    oauth = settings.auth_type == OAUTH2
    if oauth and not mailbox:
        return ProbeResult.failed(NEEDS_MAILBOX_MESSAGE)
    try:
        install_exchangelib_trust()
    except ImproperlyConfigured as error:
        return ProbeResult.failed(
            f"The trusted CA file is misconfigured: {error}", error=untrusted_ca_file(error)
        )
    keep_exchangelib_quiet()
    credentials = settings.make_credentials()
    probe = _Probe(
        url=settings.endpoint,
        server=urlsplit(settings.endpoint).netloc,
        mailbox=mailbox,
        oauth=oauth,
        impersonating=settings.access_type == IMPERSONATION,
        secrets=_secrets_of(credentials),
    )
    config = configuration(settings, credentials, FailFast())
    try:
        return _request(probe, config, settings.access_type)
    except Exception as error:  # mapped to plain words; the traceback never reaches the page
        return _failure(probe, error)
    finally:
        forget_protocol(config)


def _secrets_of(credentials: Any) -> tuple[str, ...]:
    """The plaintexts a message must never repeat (a password, an app's client secret)."""
    values = (getattr(credentials, "password", None), getattr(credentials, "client_secret", None))
    return tuple(value for value in values if isinstance(value, str) and value)


def _request(probe: _Probe, config: Any, access_type: str) -> ProbeResult:
    """One request: GetFolder of the mailbox root, or ResolveNames without a mailbox."""
    if probe.mailbox:
        account = open_account(config, probe.mailbox, access_type, PROBE_TIMEOUT)
        account.root  # noqa: B018 — GetFolder msgfolderroot: reach, TLS, auth, impersonation
        return ProbeResult.passed(f"Connected to {probe.server} and opened {probe.mailbox}.")
    protocol = Protocol(config=config)
    protocol.TIMEOUT = PROBE_TIMEOUT
    with suppress(
        ews_errors.ErrorNameResolutionNoResults, ews_errors.ErrorNameResolutionMultipleResults
    ):
        protocol.resolve_names(["SMTP:postmaster"])
    return ProbeResult.passed(f"Connected to {probe.server} and signed in.")


# ---------------------------------------------------------------------------------------------
# Mapping failures to plain words


def _failure(probe: _Probe, error: Exception) -> ProbeResult:
    message, kind = _describe(probe, error)
    logger.info("connection test to %s failed: %s (%s)", probe.server, kind, type(error).__name__)
    fields = {
        "server": ("server_address",),
        "virtual_directory": ("virtual_directory",),
        "credentials": _APP_CREDENTIAL_FIELDS if probe.oauth else _BASIC_CREDENTIAL_FIELDS,
        # A denied impersonation is the shared sync account's; with delegate access the
        # mailbox refused its own owner's credentials.
        "impersonation": ("use_for_all_users",) if probe.impersonating else ("mailbox",),
        "mailbox": ("mailbox",),
    }.get(kind, ())
    return ProbeResult.failed(
        message, {name: message for name in fields}, error=session_error(error)
    )


def _describe(probe: _Probe, error: Exception) -> tuple[str, str]:
    """(plain-words message, which kind of setting it concerns)."""
    for kind, check in _CLASSIFIERS:
        message = check(probe, error)
        if message:
            return _scrub(message, probe.secrets), kind
    return (
        f"The connection test failed with an unexpected answer from {probe.server} "
        f"({type(error).__name__}).",
        "other",
    )


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def _refused_server_message(probe: _Probe, error: Exception) -> str | None:
    # Already plain words naming the host, the address and EXCHANGE_ALLOWED_NETWORKS.
    if isinstance(error, AddressRefused) and error.host == urlsplit(probe.url).hostname:
        return error.message
    return None


def _refused_elsewhere_message(probe: _Probe, error: Exception) -> str | None:
    # The OAuth token endpoint (GRAPH_AUTHORITY_URL): no field of the form names it.
    return error.message if isinstance(error, AddressRefused) else None


def _tls_message(probe: _Probe, error: Exception) -> str | None:
    lowered = str(error).lower()
    if "certificate" not in lowered and "ssl" not in lowered:
        return None
    if "self-signed" in lowered or "self signed" in lowered:
        return SELF_SIGNED_MESSAGE
    if "hostname mismatch" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
        reason = f"it is not issued for {probe.server.split(':')[0]}"
    elif "expired" in lowered:
        reason = "it has expired"
    elif "unable to get local issuer" in lowered or "unknown ca" in lowered:
        reason = f"it is not signed by a trusted CA (add your private CA with {CA_BUNDLE_ENV})"
    else:
        reason = "it could not be verified"
    return f"The server's certificate is refused: {reason}."


def _unreachable_message(probe: _Probe, error: Exception) -> str | None:
    if not isinstance(error, ews_errors.ErrorTimeoutExpired | ConnectionError | OSError):
        return None
    lowered = str(error).lower()
    if "refused" in lowered:
        reason = "connection refused"
    elif "resolve" in lowered or "name or service not known" in lowered or "getaddrinfo" in lowered:
        reason = "the host name cannot be resolved"
    elif "timed out" in lowered or "timeout" in lowered:
        reason = "no answer (timed out)"
    elif "reset" in lowered or "aborted" in lowered:
        reason = "the connection was reset"
    else:
        reason = "the connection failed"
    return f"Cannot reach {_with_port(probe.server)}: {reason}."


def _with_port(server: str) -> str:
    return server if ":" in server else f"{server}:443"


def _credentials_message(probe: _Probe, error: Exception) -> str | None:
    if isinstance(error, ews_errors.UnauthorizedError):
        if "locked out" in str(error):
            return "The account is locked out. Ask your Exchange administrator to unlock it."
        return "The server rejected the username or password."
    if isinstance(error, OAuth2Error):
        return "Microsoft's sign-in rejected the app registration (tenant, client ID or secret)."
    return None


def _virtual_directory_message(probe: _Probe, error: Exception) -> str | None:
    status = re.search(r"Code: (\d{3})", str(error))
    if isinstance(error, ews_errors.MalformedResponseError) and status and status[1] == "404":
        return f"There is no EWS endpoint at {probe.url} (HTTP 404): check the virtual directory."
    if isinstance(error, ews_errors.RedirectError):
        return (
            "The server redirects the EWS endpoint elsewhere; redirects are not followed. Enter "
            "the final host name and virtual directory."
        )
    return None


def _impersonation_message(probe: _Probe, error: Exception) -> str | None:
    if isinstance(
        error, ews_errors.ErrorImpersonateUserDenied | ews_errors.ErrorImpersonationDenied
    ):
        return (
            f"The sync account may not impersonate {probe.mailbox}: grant it the "
            "ApplicationImpersonation role."
        )
    if isinstance(error, ews_errors.ErrorAccessDenied) and probe.mailbox:
        return f"Access to {probe.mailbox} was denied."
    return None


def _mailbox_message(probe: _Probe, error: Exception) -> str | None:
    if isinstance(error, ews_errors.ErrorNonExistentMailbox):
        return f"The mailbox {probe.mailbox} does not exist on {probe.server}."
    return None


def _busy_message(probe: _Probe, error: Exception) -> str | None:
    if isinstance(error, ews_errors.ErrorServerBusy | ews_errors.ErrorInternalServerTransientError):
        return f"{probe.server} is busy right now; please try again in a few minutes."
    return None


_CLASSIFIERS: tuple[tuple[str, Callable[[_Probe, Exception], str | None]], ...] = (
    ("server", _refused_server_message),
    ("other", _refused_elsewhere_message),
    ("server", _tls_message),
    ("credentials", _credentials_message),
    ("impersonation", _impersonation_message),
    ("mailbox", _mailbox_message),
    ("virtual_directory", _virtual_directory_message),
    ("other", _busy_message),
    ("server", _unreachable_message),
)
