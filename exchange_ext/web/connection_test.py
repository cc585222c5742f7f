"""The "test the connection" of the General tab (on save) and of the profile tab (SPEC §3.1, §3.4).

One EWS request, with a short timeout and exchangelib's ``FailFast`` policy, tells whether the
server is reachable, trusted (TLS), accepts the credentials and, with a shared sync account,
lets it impersonate a mailbox. Failures come back as plain words attached to the form fields
that could not be validated. Secrets never appear in a message or a log line.

Nothing is named ``test_*`` here: pytest must not collect these functions.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    OAUTH2,
    Account,
    Configuration,
    Credentials,
    EWSTimeZone,
    FailFast,
    OAuth2Credentials,
)
from exchangelib import errors as ews_errors
from exchangelib.protocol import Protocol

from exchange_ext.backends.ews.endpoint import endpoint_url, login_name, pinned_version
from exchange_ext.backends.graph import probe as graph_probe
from exchange_ext.backends.tls import CA_BUNDLE_ENV, install_exchangelib_trust
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.secrets import Secret, UndecryptableSecret
from exchange_ext.web import validators

logger = logging.getLogger(__name__)

# (connect, read) seconds per request. The probe sends one request, so a dead or silent server
# costs at most ~4 s: the admin waits for the page, and the whole probe must stay under 5 s.
PROBE_TIMEOUT = (2.5, 4.0)
GRAPH_AUTHORITY_ENV = "GRAPH_AUTHORITY_URL"

SELF_SIGNED_MESSAGE = (
    "The server's certificate is self-signed; self-signed certificates are refused. Install a "
    "certificate from a trusted CA, or add your private CA with EXCHANGE_CA_BUNDLE."
)


@dataclass(frozen=True)
class ConnectionReport:
    """The outcome of a connection test.

    ``ok``: the server was reached and accepted what was tested. ``message``: one sentence for
    the page. ``field_errors``: form field name → plain-words problem, for every field that
    could not be validated (SPEC §3.1 field names; on the profile tab ``mailbox``,
    ``username``, ``password``).
    """

    ok: bool
    message: str
    field_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Fields:
    """Which form fields a failure points at, for the form the test was started from."""

    server: tuple[str, ...] = ("server_address",)
    virtual_directory: tuple[str, ...] = ("virtual_directory",)
    credentials: tuple[str, ...] = ("username", "password")
    impersonation: tuple[str, ...] = ("use_for_all_users",)
    mailbox: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Probe:
    """Everything one probe request needs (credentials are built per probe, see _isolated)."""

    url: str
    server: str
    make_credentials: Callable[[], Any]
    auth_type: str
    version: Any
    mailbox: str | None
    access_type: str
    secrets: tuple[str, ...]
    fields: _Fields


# ---------------------------------------------------------------------------------------------
# Public API


def probe_config_connection(
    config: ExchangeConfig, *, mailbox: str | None = None
) -> ConnectionReport:
    """Test ``config`` (saved or not) with its sync credentials; never raises for bad settings.

    With ``use_for_all_users``, impersonation is checked on ``mailbox`` (default: the first
    enabled resource's mailbox); with no mailbox enabled, the account's own access is tested
    and the report says impersonation will be checked once a resource is enabled. Office 365
    with Microsoft Graph: sign-in, permissions and one enabled mailbox (:mod:`.graph_probe`).
    """
    if config.backend_name == "graph":
        # Missing fields are reported without looking for a mailbox (no query, no request).
        complete = not graph_probe.credential_problems(config)
        target = mailbox or (_first_enabled_mailbox() if complete else None)
        return graph_probe.probe_graph(config, target, report=ConnectionReport)
    problems = _config_problems(config)
    if problems:
        return ConnectionReport(False, "Correct the marked fields, then save again.", problems)
    if not config.use_basic_auth:
        return _probe_oauth(config, mailbox)
    target = (mailbox or _first_enabled_mailbox()) if config.use_for_all_users else None
    probe = _basic_probe(
        config,
        config.username,
        config.password,
        mailbox=target,
        access_type=IMPERSONATION if target else DELEGATE,
        fields=_Fields(),
    )
    report = _run(probe)
    if report.ok and config.use_for_all_users and not target:
        return ConnectionReport(
            True,
            "Connected and signed in. Impersonation will be checked when a resource is enabled.",
        )
    return report


def probe_mailbox_connection(settings: MailboxSettings, config: ExchangeConfig) -> ConnectionReport:
    """The profile tab's "Test connection" for one resource's mailbox.

    With the admin's shared sync account (``use_for_all_users``) the sync account impersonates
    the resource's mailbox; otherwise the resource's own username/password open its own
    mailbox. Field errors use ``mailbox``, ``username`` and ``password``; problems of the
    admin's settings are reported in the message only (the resource cannot fix them).
    """
    if config.backend_name == "graph":
        return _probe_graph_mailbox(settings, config)
    shared_account = config.use_for_all_users or not config.use_basic_auth
    if _config_problems(config, with_credentials=shared_account):
        return ConnectionReport(
            False, "The MS Exchange settings of this installation are incomplete: ask your admin."
        )
    address = settings.effective_mailbox
    admin_only = _Fields(
        server=(), virtual_directory=(), credentials=(), impersonation=("mailbox",),
        mailbox=("mailbox",),
    )  # fmt: skip
    if not config.use_basic_auth:
        return _probe_oauth(config, address, fields=admin_only)
    if config.use_for_all_users:
        fields = _Fields(
            server=(), virtual_directory=(), credentials=(), impersonation=("mailbox",)
        )
        probe = _basic_probe(
            config, config.username, config.password, address, IMPERSONATION, fields
        )
        return _run(probe)
    own = _Fields(server=(), virtual_directory=(), mailbox=("mailbox",), impersonation=("mailbox",))
    missing = _missing_own_credentials(settings)
    if missing:
        return ConnectionReport(False, "Enter your username and password.", missing)
    return _run(_basic_probe(config, settings.username, settings.password, address, DELEGATE, own))


def _probe_graph_mailbox(settings: MailboxSettings, config: ExchangeConfig) -> ConnectionReport:
    """Graph on the profile tab: the admin's app registration, this resource's mailbox."""
    if graph_probe.credential_problems(config):
        return ConnectionReport(
            False, "The MS Exchange settings of this installation are incomplete: ask your admin."
        )
    report = graph_probe.probe_graph(
        config, settings.effective_mailbox, mailbox_field="mailbox", report=ConnectionReport
    )
    if report.ok or "mailbox" in report.field_errors:
        return report
    # The app registration's problems are the admin's to fix: no field of this form.
    return ConnectionReport(False, f"{report.message} Ask your admin.")


# ---------------------------------------------------------------------------------------------
# Checking the settings before any request


def _config_problems(config: ExchangeConfig, *, with_credentials: bool = True) -> dict[str, str]:
    problems: dict[str, str] = {}
    try:
        validators.validate_server_address(config.server_address)
    except ValidationError as error:
        problems["server_address"] = " ".join(error.messages)
    if re.search(r"[\s?#\\]|://|\.\.", config.virtual_directory or ""):
        problems["virtual_directory"] = "Enter a path such as /EWS/Exchange.asmx."
    if config.use_basic_auth and with_credentials:
        problems.update(_basic_credential_problems(config))
    return problems


def _basic_credential_problems(config: ExchangeConfig) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not config.username.strip():
        problems["username"] = "Enter the sync account's username."
    problems.update(_password_problem(config.password, "password"))
    try:
        validators.validate_credentials_domain(config.username, config.domain)
    except ValidationError as error:
        problems.update({k: " ".join(v) for k, v in error.message_dict.items()})
    return problems


def _password_problem(secret: Secret | str | None, name: str) -> dict[str, str]:
    if isinstance(secret, UndecryptableSecret):
        return {name: "The stored secret cannot be decrypted (the keys changed): enter it again."}
    if not secret:
        return {name: "Enter the password."}
    return {}


def _reveal(value: Secret | str | None) -> str:
    """The plaintext of a stored Secret, or of a str an unsaved form put on the instance."""
    if isinstance(value, Secret):
        return value.reveal()
    return value or ""


def _missing_own_credentials(settings: MailboxSettings) -> dict[str, str]:
    problems = {} if settings.username.strip() else {"username": "Enter your username."}
    return problems | _password_problem(settings.password, "password")


def _first_enabled_mailbox() -> str | None:
    first = (
        MailboxSettings.objects.filter(sync_enabled=True, resource__active=True)
        .select_related("resource")
        .order_by("pk")
        .first()
    )
    return first.effective_mailbox if first else None


# ---------------------------------------------------------------------------------------------
# Building the probe


def _basic_probe(
    config: ExchangeConfig,
    username: str,
    password: Secret | str | None,
    mailbox: str | None,
    access_type: str,
    fields: _Fields,
) -> _Probe:
    """Basic auth (on-premises), with the domain applied as ``DOMAIN\\user`` when separate."""
    login = login_name(username, config.domain)
    plaintext = _reveal(password)
    return _Probe(
        url=endpoint_url(config),
        server=config.server_address.strip().lower(),
        make_credentials=lambda: _ProbeCredentials(login, plaintext),
        auth_type=BASIC,
        version=pinned_version(config.exchange_version),
        mailbox=mailbox,
        access_type=access_type,
        secrets=(plaintext,),
        fields=fields,
    )


def _probe_oauth(
    config: ExchangeConfig, mailbox: str | None, fields: _Fields | None = None
) -> ConnectionReport:
    """Exchange Online over EWS with an app registration (client credentials grant).

    App-only EWS must impersonate the mailbox it opens (ApplicationImpersonation is gone from
    Exchange Online; the app holds ``full_access_as_app``): protocols.md §0, §1.4.
    """
    fields = fields or _Fields(credentials=("tenant_id", "client_id", "client_secret"))
    problems = _oauth_problems(config) if fields.credentials else {}
    if problems:
        return ConnectionReport(False, "Correct the marked fields, then save again.", problems)
    if not config.client_secret:
        return ConnectionReport(
            False, "Testing certificate sign-in over EWS is not available yet; use a client secret."
        )
    target = mailbox or _first_enabled_mailbox()
    if not target:
        return ConnectionReport(
            False, "Enable a resource first: an app-only connection is tested on a mailbox."
        )
    secret = _reveal(config.client_secret)
    tenant, client = config.tenant_id.strip(), config.client_id.strip()
    probe = _Probe(
        url=endpoint_url(config),
        server=config.server_address.strip().lower(),
        make_credentials=lambda: _ProbeOAuth2Credentials(client, secret, tenant_id=tenant),
        auth_type=OAUTH2,
        version=pinned_version(config.exchange_version),
        mailbox=target,
        access_type=IMPERSONATION,
        secrets=(secret,),
        fields=fields,
    )
    return _run(probe)


def _oauth_problems(config: ExchangeConfig) -> dict[str, str]:
    problems = {
        name: "This field is required for Office 365."
        for name in ("tenant_id", "client_id")
        if not getattr(config, name).strip()
    }
    if not config.client_secret and not config.client_certificate:
        problems["client_secret"] = "Enter a client secret (or a certificate)."
    if isinstance(config.client_secret, UndecryptableSecret):
        problems |= _password_problem(config.client_secret, "client_secret")
    return problems


class _ProbeKey:
    """Makes a credentials object equal only to itself.

    exchangelib caches one Protocol per process under ``(endpoint, credentials)``, keeping the
    retry policy, pool and timeout of whoever came first (reliability.md E3): a probe sharing
    the background sync's key would either inherit its FaultTolerance — a wrong password then
    looks like throttling and blocks for up to an hour (E2) — or leave its own 4-second timeout
    and FailFast to the sync. A key that is unique per probe gives the probe a Protocol of its
    own, which :func:`_run` removes from the cache and closes afterwards.
    """

    _probe_key: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ProbeKey) and other._probe_key == self._probe_key

    def __hash__(self) -> int:
        return hash(self._probe_key)


class _ProbeCredentials(_ProbeKey, Credentials):
    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._probe_key = uuid.uuid4().hex


class _ProbeOAuth2Credentials(_ProbeKey, OAuth2Credentials):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._probe_key = uuid.uuid4().hex

    @property
    def token_url(self) -> str:
        # National clouds use another authority (SPEC §9: GRAPH_AUTHORITY_URL).
        authority = os.environ.get(GRAPH_AUTHORITY_ENV, "https://login.microsoftonline.com")
        return f"{authority.rstrip('/')}/{self.tenant_id}/oauth2/v2.0/token"


# ---------------------------------------------------------------------------------------------
# Running it


def _run(probe: _Probe) -> ConnectionReport:
    try:
        install_exchangelib_trust()
    except ImproperlyConfigured as error:
        return ConnectionReport(False, f"The trusted CA file is misconfigured: {error}")
    _keep_exchangelib_quiet()
    config = Configuration(
        service_endpoint=probe.url,
        credentials=probe.make_credentials(),
        auth_type=probe.auth_type,
        version=probe.version,
        retry_policy=FailFast(),
        max_connections=1,
    )
    try:
        return _request(probe, config)
    except Exception as error:  # mapped to plain words; the traceback never reaches the page
        return _report_failure(probe, error)
    finally:
        _forget_protocol(config)


def _request(probe: _Probe, config: Configuration) -> ConnectionReport:
    """One request: GetFolder of the mailbox root, or ResolveNames without a mailbox."""
    if probe.mailbox:
        account = Account(
            probe.mailbox,
            config=config,
            autodiscover=False,
            access_type=probe.access_type,
            default_timezone=EWSTimeZone("UTC"),
        )
        account.protocol.TIMEOUT = PROBE_TIMEOUT
        account.root  # noqa: B018 — GetFolder msgfolderroot: reach, TLS, auth, impersonation
        return ConnectionReport(True, f"Connected to {probe.server} and opened {probe.mailbox}.")
    protocol = Protocol(config=config)
    protocol.TIMEOUT = PROBE_TIMEOUT
    # ResolveNames needs no mailbox address: it proves the login without opening a mailbox.
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/resolvenames
    with suppress(
        ews_errors.ErrorNameResolutionNoResults, ews_errors.ErrorNameResolutionMultipleResults
    ):
        protocol.resolve_names(["SMTP:postmaster"])
    return ConnectionReport(True, f"Connected to {probe.server} and signed in.")


def _forget_protocol(config: Configuration) -> None:
    with suppress(KeyError):
        protocol, _created = Protocol[config]
        del Protocol[config]
        if not isinstance(protocol, Exception):
            protocol.close()


def _keep_exchangelib_quiet() -> None:
    # exchangelib logs Authorization headers and whole bodies at DEBUG (DESIGN §4).
    library_logger = logging.getLogger("exchangelib")
    if library_logger.getEffectiveLevel() <= logging.DEBUG:
        library_logger.setLevel(logging.INFO)


# ---------------------------------------------------------------------------------------------
# Mapping failures to plain words


def _report_failure(probe: _Probe, error: Exception) -> ConnectionReport:
    message, kind = _describe(probe, error)
    logger.info("connection test to %s failed: %s (%s)", probe.server, kind, type(error).__name__)
    targets = {
        "server": probe.fields.server,
        "virtual_directory": probe.fields.virtual_directory,
        "credentials": probe.fields.credentials,
        "impersonation": probe.fields.impersonation,
        "mailbox": probe.fields.mailbox,
    }.get(kind, ())
    return ConnectionReport(False, message, {name: message for name in targets})


def _describe(probe: _Probe, error: Exception) -> tuple[str, str]:
    """(plain-words message, which kind of field it concerns)."""
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
    if _oauth_rejected(error):
        return "Microsoft's sign-in rejected the app registration (tenant, client ID or secret)."
    return None


def _oauth_rejected(error: Exception) -> bool:
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    return isinstance(error, OAuth2Error)


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
    ("server", _tls_message),
    ("credentials", _credentials_message),
    ("impersonation", _impersonation_message),
    ("mailbox", _mailbox_message),
    ("virtual_directory", _virtual_directory_message),
    ("other", _busy_message),
    ("server", _unreachable_message),
)
