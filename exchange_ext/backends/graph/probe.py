"""The connection test for Microsoft Graph (General tab on save, profile tab), SPEC §3.1.

Three steps, each with plain-words errors on the field to fix:

1. **Sign-in**: a fresh token request (not the sync's cached token), so a wrong tenant
   (``tenant_id``), unknown app (``client_id``), wrong or expired secret (``client_secret``)
   or refused certificate (``client_certificate``) is found now.
   https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
2. **Permissions**: the token's ``roles`` must hold ``Calendars.ReadWrite`` and
   ``Contacts.ReadWrite`` (application permissions with admin consent); a token without them
   points at ``client_id``. Read without verifying the signature: it only words the advice,
   the server still decides.
3. **Mailbox**: one ``$batch`` reading one enabled mailbox's calendar and contacts
   (https://learn.microsoft.com/graph/api/calendar-get). A mailbox outside the app's
   application access policy / RBAC for Applications scope is named in the message.

Secrets never appear in a message or a log line. Nothing is named ``test_*`` (pytest).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from exchange_ext.backends.base import (
    AuthFailed,
    BackendError,
    ImpersonationDenied,
    MailboxNotFound,
    Throttled,
)
from exchange_ext.backends.factory import graph_authority_url, graph_base_url
from exchange_ext.backends.graph.auth import (
    GraphCredentials,
    TokenRefused,
    TokenSource,
    certificate_thumbprint,
)
from exchange_ext.backends.graph.http import PERMISSION_ADVICE, BatchRequest, GraphHttp
from exchange_ext.models import ExchangeConfig
from exchange_ext.secrets import Secret, UndecryptableSecret

# (connect, read) seconds: a token request and one batch must stay under the 5 s a page waits.
PROBE_TIMEOUT = (2.0, 2.0)
REQUIRED_ROLES = ("Calendars.ReadWrite", "Contacts.ReadWrite")


def probe_graph(
    config: ExchangeConfig,
    mailbox: str | None,
    *,
    mailbox_field: str = "",
    report: Callable[..., Any],
) -> Any:
    """Test ``config``'s app registration and, when given, its access to ``mailbox``.

    ``report(ok, message, field_errors)`` builds the caller's report type;
    ``mailbox_field`` names the form field for mailbox problems ("" on the General tab).
    """
    problems = credential_problems(config)
    if problems:
        return report(False, "Correct the marked fields, then save again.", problems)
    credentials = _credentials(config)
    token_field = "client_certificate" if credentials.certificate_pem else "client_secret"
    try:
        token = TokenSource(credentials, PROBE_TIMEOUT).token()
    except TokenRefused as error:
        field = error.field or token_field
        if field in ("client_secret", "client_certificate"):
            field = token_field
        message = error.message
        if field == "client_certificate" and error.code is not None:
            # The thumbprint the Entra portal lists, so the admin can compare the two.
            thumbprint = certificate_thumbprint(credentials.certificate_pem)
            message = f"{message} (this certificate's thumbprint: {thumbprint})"
        return report(False, "Microsoft Graph refused the sign-in.", {field: message})
    except BackendError as error:
        return report(False, f"The Microsoft sign-in service could not be reached: {error}", {})
    missing = _missing_roles(token)
    if missing:
        message = f"The app lacks {', '.join(missing)}: {PERMISSION_ADVICE}."
        return report(False, "Microsoft Graph permissions are missing.", {"client_id": message})
    if not mailbox:
        return report(
            True,
            "Signed in to Microsoft Graph. Mailbox access will be checked when a resource is "
            "enabled.",
            {},
        )
    return _probe_mailbox(credentials, token, mailbox, mailbox_field, report)


def credential_problems(config: ExchangeConfig) -> dict[str, str]:
    """Fields that are missing or unreadable before any request."""
    problems = {
        name: "This field is required for Microsoft Graph."
        for name in ("tenant_id", "client_id")
        if not getattr(config, name).strip()
    }
    for name in ("client_secret", "client_certificate"):
        if isinstance(getattr(config, name), UndecryptableSecret):
            problems[name] = (
                "The stored secret cannot be decrypted (the keys changed): enter it again."
            )
    if not config.client_secret and not config.client_certificate:
        problems["client_secret"] = "Enter a client secret or upload a certificate."
    return problems


def _reveal(value: Secret | str | None) -> str:
    if isinstance(value, Secret):
        return value.reveal()
    return value or ""


def _credentials(config: ExchangeConfig) -> GraphCredentials:
    certificate = _reveal(config.client_certificate)
    return GraphCredentials(
        tenant_id=config.tenant_id.strip(),
        client_id=config.client_id.strip(),
        client_secret="" if certificate else _reveal(config.client_secret),
        certificate_pem=certificate,
        authority_url=graph_authority_url(),
        graph_base_url=graph_base_url(),
    )


def _missing_roles(token: str) -> list[str]:
    """Required application permissions absent from the token's ``roles`` claim."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return []  # not a JWT we can read: leave the verdict to the server
    roles = claims.get("roles") if isinstance(claims, dict) else None
    if not isinstance(roles, list):
        return []
    return [role for role in REQUIRED_ROLES if role not in roles]


def _probe_mailbox(
    credentials: GraphCredentials,
    token: str,
    mailbox: str,
    mailbox_field: str,
    report: Callable[..., Any],
) -> Any:
    user = f"/users/{quote(mailbox.strip().lower(), safe='@')}"
    http = GraphHttp(
        credentials.graph_base_url, lambda: token, mailbox=mailbox,
        budget_seconds=0.0, timeout=PROBE_TIMEOUT,
    )  # fmt: skip
    try:
        replies = http.batch(
            [
                BatchRequest("GET", f"{user}/calendar?$select=id"),
                BatchRequest("GET", f"{user}/contacts?$top=1&$select=id"),
            ],
            replay_safe=True,
        )
    except BackendError as error:
        return _mailbox_failure(error, mailbox, mailbox_field, report)
    finally:
        http.close()
    failed = next((reply for reply in replies if not reply.ok), None)
    if failed is not None:
        message = f"Microsoft Graph answered {failed.status} for {mailbox}: {failed.error_code}"
        return report(False, message, {mailbox_field: message} if mailbox_field else {})
    return report(True, f"Connected to Microsoft Graph; the mailbox {mailbox} is accessible.", {})


def _mailbox_failure(
    error: BackendError, mailbox: str, mailbox_field: str, report: Callable[..., Any]
) -> Any:
    if isinstance(error, ImpersonationDenied):
        message = (
            f"The app may not open the mailbox {mailbox}: it is outside the app's application "
            "access policy (RBAC for Applications scope) in Exchange Online. Add the mailbox "
            "to the group the policy names."
        )
        return report(False, message, {mailbox_field: message} if mailbox_field else {})
    if isinstance(error, MailboxNotFound):
        message = f"There is no Exchange Online mailbox {mailbox}."
        return report(False, message, {mailbox_field: message} if mailbox_field else {})
    if isinstance(error, AuthFailed):
        message = f"Microsoft Graph denied access to {mailbox}: {PERMISSION_ADVICE}."
        return report(False, "Microsoft Graph permissions are missing.", {"client_id": message})
    if isinstance(error, Throttled):
        return report(False, "Microsoft Graph is busy (throttling); try again in a minute.", {})
    return report(False, f"Microsoft Graph could not be reached: {error}", {})
