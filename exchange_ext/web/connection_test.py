"""The "Test connection" of the General tab (on save), the resource page and the profile tab.

A mapping, no protocol code: the settings are checked first (missing or malformed fields, no
request); then the backend the sync would use is built by
:func:`~exchange_ext.backends.factory.backend_for` and its
:meth:`~exchange_ext.backends.base.ExchangeBackend.probe` tests the connection (one short,
fail-fast exchange with the server). The probe names the settings to fix; this module puts
them on the fields of the form the test was started from. Secrets never appear in a message.

Nothing is named ``test_*`` here: pytest must not collect these functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from exchange_ext.backends import factory
from exchange_ext.backends.base import BackendError
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.secrets import Secret, UndecryptableSecret
from exchange_ext.web import validators

FIX_FIELDS_MESSAGE = _("Correct the marked fields, then save again.")
ASK_ADMIN_MESSAGE = _(
    "The MS Exchange settings of this installation are incomplete: ask your admin."
)
EWS_CERTIFICATE_MESSAGE = _(
    "Testing certificate sign-in over EWS is not available yet; use a client secret."
)
UNDECRYPTABLE_MESSAGE = gettext_noop(
    "The stored secret cannot be decrypted (the keys changed): enter it again."
)


@dataclass(frozen=True)
class ConnectionReport:
    """The outcome of a connection test.

    ``ok``: the server was reached and accepted what was tested. ``message``: one sentence for
    the page. ``field_errors``: form field name → plain-words problem, for every field that
    could not be validated (the General tab's field names; on the resource page and the
    profile tab ``mailbox``, ``username``, ``password``).
    """

    ok: bool
    message: str
    field_errors: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Which of the probe's settings each form shows, and on which of its fields

#: The General tab shows every setting the probe can name, except the mailbox (it has none).
_GENERAL = {
    name: name
    for name in (
        "server_address", "virtual_directory", "username", "password", "use_for_all_users",
        "tenant_id", "client_id", "client_secret", "client_certificate",
    )
}  # fmt: skip
#: A resource's page with the admin's shared sync account: only a denied impersonation is the
#: resource's business (on its mailbox); the admin's settings are reported in the message only.
_SHARED_ACCOUNT = {"use_for_all_users": "mailbox"}
#: With an app registration (EWS over OAuth, Graph): problems of the resource's mailbox.
_APP_ACCOUNT = {"mailbox": "mailbox", "use_for_all_users": "mailbox"}
#: With the resource's own credentials: those, and its mailbox.
_OWN_ACCOUNT = {"username": "username", "password": "password", **_APP_ACCOUNT}


def _on_form(field_errors: Mapping[str, str], form: Mapping[str, str]) -> dict[str, str]:
    """The probe's ``field_errors`` on ``form``'s fields (settings the form lacks dropped)."""
    errors: dict[str, str] = {}
    for name, text in field_errors.items():
        if name in form:
            errors.setdefault(form[name], text)
    return errors


# ---------------------------------------------------------------------------------------------
# Public API


def probe_config_connection(
    config: ExchangeConfig, *, mailbox: str | None = None
) -> ConnectionReport:
    """Test ``config`` (saved or not) with its sync credentials; never raises for bad settings.

    With ``use_for_all_users`` (or an app registration), access is checked on ``mailbox``
    (default: the first enabled resource's mailbox); with no mailbox enabled, the sign-in alone
    is tested and the report says the mailbox access will be checked once a resource is
    enabled (app-only EWS cannot be tested without one and says so).
    """
    if config.backend_name == "graph":
        problems = _graph_problems(config)
        if problems:
            return ConnectionReport(False, FIX_FIELDS_MESSAGE, problems)
        return _probe(config, mailbox or _first_enabled_mailbox(), _GENERAL)
    problems = _config_problems(config)
    if problems:
        return ConnectionReport(False, FIX_FIELDS_MESSAGE, problems)
    if not config.use_basic_auth:
        problems = _oauth_problems(config)
        if problems:
            return ConnectionReport(False, FIX_FIELDS_MESSAGE, problems)
        if not config.client_secret:
            return ConnectionReport(False, EWS_CERTIFICATE_MESSAGE)
        return _probe(config, mailbox or _first_enabled_mailbox(), _GENERAL)
    # Without a shared account each resource signs in as itself: only the login is tested.
    target = (mailbox or _first_enabled_mailbox()) if config.use_for_all_users else None
    report = _probe(config, target, _GENERAL)
    if report.ok and config.use_for_all_users and not target:
        return ConnectionReport(
            True,
            gettext(
                "Connected and signed in. Impersonation will be checked when a resource is enabled."
            ),
        )
    return report


def probe_mailbox_connection(settings: MailboxSettings, config: ExchangeConfig) -> ConnectionReport:
    """The resource page's and profile tab's "Test connection" for one resource's mailbox.

    With the admin's shared sync account (``use_for_all_users``) the sync account impersonates
    the resource's mailbox; with an app registration the app opens it; otherwise the resource's
    own username/password open its own mailbox. Field errors use ``mailbox``, ``username`` and
    ``password``; problems of the admin's settings are reported in the message only (the
    resource cannot fix them).
    """
    # Before the resource is first enabled nothing is stored: test what enabling would store.
    address = settings.effective_mailbox or settings.resource.email.strip().lower()
    if config.backend_name == "graph":
        if _graph_problems(config):
            return ConnectionReport(False, ASK_ADMIN_MESSAGE)
        report = _probe(config, address, _APP_ACCOUNT)
        if report.ok or report.field_errors:
            return report
        # The app registration's problems are the admin's to fix: no field of this form.
        text = gettext("%(message)s Ask your admin.") % {"message": report.message}
        return ConnectionReport(False, text)
    shared_account = config.use_for_all_users or not config.use_basic_auth
    if _config_problems(config, with_credentials=shared_account):
        return ConnectionReport(False, ASK_ADMIN_MESSAGE)
    if not config.use_basic_auth:
        if not config.client_secret:
            return ConnectionReport(False, EWS_CERTIFICATE_MESSAGE)
        return _probe(config, address, _APP_ACCOUNT)
    if config.use_for_all_users:
        return _probe(config, address, _SHARED_ACCOUNT)
    missing = _missing_own_credentials(settings)
    if missing:
        return ConnectionReport(False, gettext("Enter your username and password."), missing)
    return _probe(config, address, _OWN_ACCOUNT, mailbox_settings=settings)


def _probe(
    config: ExchangeConfig,
    mailbox: str | None,
    form: Mapping[str, str],
    *,
    mailbox_settings: MailboxSettings | None = None,
) -> ConnectionReport:
    """Build the sync's backend for ``config`` and probe ``mailbox``; the result on ``form``."""
    try:
        backend = factory.backend_for(config, mailbox_settings=mailbox_settings)
    except BackendError as error:
        # The checks before this catch what the factory refuses (a blank username, a secret
        # the keys cannot open); this is the last word on anything they let through.
        if form is not _GENERAL:
            return ConnectionReport(False, ASK_ADMIN_MESSAGE)  # the admin's settings
        text = gettext("The connection cannot be tested: %(error)s.") % {"error": error.message}
        return ConnectionReport(False, text)
    result = backend.probe(mailbox)
    return ConnectionReport(result.ok, result.message, _on_form(result.field_errors, form))


# ---------------------------------------------------------------------------------------------
# Checking the settings before any request


def _config_problems(config: ExchangeConfig, *, with_credentials: bool = True) -> dict[str, str]:
    problems: dict[str, str] = {}
    try:
        validators.validate_server_address(config.server_address)
    except ValidationError as error:
        problems["server_address"] = " ".join(error.messages)
    if re.search(r"[\s?#\\]|://|\.\.", config.virtual_directory or ""):
        problems["virtual_directory"] = gettext("Enter a path such as /EWS/Exchange.asmx.")
    if config.use_basic_auth and with_credentials:
        problems.update(_basic_credential_problems(config))
    return problems


def _basic_credential_problems(config: ExchangeConfig) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not config.username.strip():
        problems["username"] = gettext("Enter the sync account's username.")
    problems.update(_password_problem(config.password, "password"))
    try:
        validators.validate_credentials_domain(config.username, config.domain)
    except ValidationError as error:
        problems.update({k: " ".join(v) for k, v in error.message_dict.items()})
    return problems


def _password_problem(secret: Secret | str | None, name: str) -> dict[str, str]:
    if isinstance(secret, UndecryptableSecret):
        return {name: gettext(UNDECRYPTABLE_MESSAGE)}
    if not secret:
        return {name: gettext("Enter the password.")}
    return {}


def _oauth_problems(config: ExchangeConfig) -> dict[str, str]:
    """EWS over OAuth (Office 365 without Graph): the app registration's fields."""
    problems = {
        name: gettext("This field is required for Office 365.")
        for name in ("tenant_id", "client_id")
        if not getattr(config, name).strip()
    }
    if not config.client_secret and not config.client_certificate:
        problems["client_secret"] = gettext("Enter a client secret (or a certificate).")
    if isinstance(config.client_secret, UndecryptableSecret):
        problems |= _password_problem(config.client_secret, "client_secret")
    return problems


def _graph_problems(config: ExchangeConfig) -> dict[str, str]:
    """Microsoft Graph: the app registration's fields that are missing or unreadable."""
    problems = {
        name: gettext("This field is required for Microsoft Graph.")
        for name in ("tenant_id", "client_id")
        if not getattr(config, name).strip()
    }
    for name in ("client_secret", "client_certificate"):
        if isinstance(getattr(config, name), UndecryptableSecret):
            problems[name] = gettext(UNDECRYPTABLE_MESSAGE)
    if not config.client_secret and not config.client_certificate:
        problems["client_secret"] = gettext("Enter a client secret or upload a certificate.")
    return problems


def _missing_own_credentials(settings: MailboxSettings) -> dict[str, str]:
    problems = {} if settings.username.strip() else {"username": gettext("Enter your username.")}
    return problems | _password_problem(settings.password, "password")


def _first_enabled_mailbox() -> str | None:
    first = (
        MailboxSettings.objects.filter(sync_enabled=True, resource__active=True)
        .select_related("resource")
        .order_by("pk")
        .first()
    )
    return first.effective_mailbox if first else None
