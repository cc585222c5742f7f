"""The Microsoft Graph connection test (``GraphBackend.probe``; ``ExchangeBackend.probe``).

Three steps with the backend's own app registration (as :mod:`exchange_ext.backends.factory`
built it for syncing), each failing in plain words on the setting to fix:

1. **Sign-in**: a fresh token request (not the sync's cached token), so a wrong tenant
   (``tenant_id``), unknown app (``client_id``), wrong or expired secret (``client_secret``)
   or refused certificate (``client_certificate``) is found now.
   https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
2. **Permissions**: the token's ``roles`` must hold ``Calendars.ReadWrite`` and
   ``Contacts.ReadWrite`` (application permissions with admin consent); a token without them
   points at ``client_id``. Read without verifying the signature: it only words the advice,
   the server still decides.
3. **Mailbox** (when one is given): one ``$batch`` reading its calendar and contacts
   (https://learn.microsoft.com/graph/api/calendar-get). A mailbox outside the app's
   application access policy / RBAC for Applications scope is named in the message; mailbox
   problems are reported on the ``mailbox`` field.

Short timeouts and no retries (:data:`PROBE_TIMEOUT`, no throttling budget). Secrets never
appear in a message or a log line. Nothing is named ``test_*`` (pytest).
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from exchange_ext.backends.base import (
    AddressRefused,
    AuthFailed,
    BackendError,
    ImpersonationDenied,
    MailboxNotFound,
    ProbeResult,
    Throttled,
)
from exchange_ext.backends.graph.auth import (
    GraphCredentials,
    TokenRefused,
    TokenSource,
    certificate_thumbprint,
)
from exchange_ext.backends.graph.http import (
    PERMISSION_ADVICE,
    BatchRequest,
    GraphHttp,
    whole_call_error,
)

# (connect, read) seconds: a token request and one batch must stay under the 5 s a page waits.
PROBE_TIMEOUT = (2.0, 2.0)
REQUIRED_ROLES = ("Calendars.ReadWrite", "Contacts.ReadWrite")
MAILBOX_FIELD = "mailbox"


def probe_graph(credentials: GraphCredentials, base_url: str, mailbox: str | None) -> ProbeResult:
    """Test the app registration ``credentials`` and, when given, its access to ``mailbox``
    through the Graph API at ``base_url`` (the sync's).

    Never raises; see the module for the steps and the fields each failure names.
    """
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
        return ProbeResult.failed(
            "Microsoft Graph refused the sign-in.", {field: message}, error=error
        )
    except AddressRefused as error:
        return ProbeResult.failed(error.message, error=error)  # GRAPH_AUTHORITY_URL: no field
    except BackendError as error:
        return ProbeResult.failed(
            f"The Microsoft sign-in service could not be reached: {error}", error=error
        )
    missing = _missing_roles(token)
    if missing:
        message = f"The app lacks {', '.join(missing)}: {PERMISSION_ADVICE}."
        return ProbeResult.failed(
            "Microsoft Graph permissions are missing.",
            {"client_id": message},
            error=AuthFailed(message),
        )
    if not mailbox:
        return ProbeResult.passed(
            "Signed in to Microsoft Graph. Mailbox access will be checked when a resource is "
            "enabled."
        )
    return _probe_mailbox(base_url, token, mailbox)


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


def _probe_mailbox(base_url: str, token: str, mailbox: str) -> ProbeResult:
    user = f"/users/{quote(mailbox.strip().lower(), safe='@')}"
    http = GraphHttp(
        base_url, lambda: token, mailbox=mailbox, budget_seconds=0.0, timeout=PROBE_TIMEOUT
    )
    try:
        replies = http.batch(
            [
                BatchRequest("GET", f"{user}/calendar?$select=id"),
                BatchRequest("GET", f"{user}/contacts?$top=1&$select=id"),
            ],
            replay_safe=True,
        )
    except BackendError as error:
        return _mailbox_failure(error, mailbox)
    finally:
        http.close()
    failed = next((reply for reply in replies if not reply.ok), None)
    if failed is not None:
        message = f"Microsoft Graph answered {failed.status} for {mailbox}: {failed.error_code}"
        return ProbeResult.failed(
            message, {MAILBOX_FIELD: message}, error=whole_call_error(failed, mailbox)
        )
    return ProbeResult.passed(f"Connected to Microsoft Graph; the mailbox {mailbox} is accessible.")


def _mailbox_failure(error: BackendError, mailbox: str) -> ProbeResult:
    if isinstance(error, ImpersonationDenied):
        message = (
            f"The app may not open the mailbox {mailbox}: it is outside the app's application "
            "access policy (RBAC for Applications scope) in Exchange Online. Add the mailbox "
            "to the group the policy names."
        )
        return ProbeResult.failed(message, {MAILBOX_FIELD: message}, error=error)
    if isinstance(error, MailboxNotFound):
        message = f"There is no Exchange Online mailbox {mailbox}."
        return ProbeResult.failed(message, {MAILBOX_FIELD: message}, error=error)
    if isinstance(error, AuthFailed):
        message = f"Microsoft Graph denied access to {mailbox}: {PERMISSION_ADVICE}."
        return ProbeResult.failed(
            "Microsoft Graph permissions are missing.", {"client_id": message}, error=error
        )
    if isinstance(error, AddressRefused):
        return ProbeResult.failed(error.message, error=error)  # GRAPH_BASE_URL: no field
    if isinstance(error, Throttled):
        return ProbeResult.failed(
            "Microsoft Graph is busy (throttling); try again in a minute.", error=error
        )
    return ProbeResult.failed(f"Microsoft Graph could not be reached: {error}", error=error)
