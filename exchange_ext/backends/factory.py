"""Which backend a configuration gets (docs/sync-rules.md, "Backends").

- Basic auth (on-premises) → EWS with the sync account impersonating each mailbox when
  ``use_for_all_users``, else with the resource's own credentials (delegate access).
- Office 365 without Graph → EWS with OAuth (client credentials, impersonation).
- Office 365 with Graph → :class:`~exchange_ext.backends.graph.backend.GraphBackend` (app-only,
  ``GRAPH_AUTHORITY_URL`` / ``GRAPH_BASE_URL`` for national clouds and the sandbox).
"""

from __future__ import annotations

import os

from exchange_ext.backends.base import AuthFailed, ExchangeBackend
from exchange_ext.backends.ews.backend import EwsBackend, close_all_connections
from exchange_ext.backends.ews.endpoint import settings_for
from exchange_ext.backends.graph.auth import (
    DEFAULT_AUTHORITY,
    DEFAULT_GRAPH_BASE,
    GraphCredentials,
)
from exchange_ext.backends.graph.backend import GraphBackend, GraphSettings
from exchange_ext.crypto import SecretDecryptionError
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.secrets import reveal

#: Seconds one backend call may spend waiting for throttling before raising Throttled; keep it
#: well under the task timeout (docs/sync-rules.md, "Scheduling, leases and budgets").
RETRY_BUDGET_ENV = "EXCHANGE_RETRY_BUDGET_SECONDS"
DEFAULT_RETRY_BUDGET = 120.0
GRAPH_AUTHORITY_ENV = "GRAPH_AUTHORITY_URL"
GRAPH_BASE_ENV = "GRAPH_BASE_URL"
PUBLIC_FOLDER_ENV = "EXCHANGE_PUBLIC_CONTACTS_FOLDER"


def backend_for(
    config: ExchangeConfig, *, mailbox_settings: MailboxSettings | None = None
) -> ExchangeBackend:
    """The backend for ``config`` (and, with per-resource credentials, for that resource).

    The same backend serves the sync and the connection test (:meth:`ExchangeBackend.probe`).
    Raises :class:`AuthFailed` when the credentials needed are missing or cannot be
    decrypted. No I/O.
    """
    builder = _BUILDERS[config.backend_name]
    try:
        return builder(config, mailbox_settings)
    except SecretDecryptionError:
        raise AuthFailed(
            "a stored secret cannot be decrypted (the keys changed): enter it again"
        ) from None


def _graph_backend(
    config: ExchangeConfig, mailbox_settings: MailboxSettings | None
) -> GraphBackend:
    """Office 365 with "Use MS Graph": app-only Graph with the configuration's app registration
    (the same for every mailbox; per-resource credentials do not apply)."""
    return GraphBackend(
        GraphSettings(
            credentials=graph_credentials(config),
            base_url=graph_base_url(),
            retry_budget_seconds=retry_budget_seconds(),
        )
    )


def graph_credentials(config: ExchangeConfig) -> GraphCredentials:
    """The app registration of ``config``; :class:`AuthFailed` when a part is missing,
    :class:`~exchange_ext.crypto.SecretDecryptionError` when a stored one cannot be decrypted
    (:func:`backend_for` reports that as AuthFailed)."""
    tenant_id, client_id = config.tenant_id.strip(), config.client_id.strip()
    secret, certificate = reveal(config.client_secret), reveal(config.client_certificate)
    if not tenant_id or not client_id or not (secret or certificate):
        raise AuthFailed(
            "Microsoft Graph needs the tenant ID, the application (client) ID and a client "
            "secret or certificate: complete them on the General tab"
        )
    return GraphCredentials(
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret="" if certificate else secret,
        certificate_pem=certificate,
        authority_url=graph_authority_url(),
        graph_base_url=graph_base_url(),
    )


def graph_authority_url() -> str:
    """``GRAPH_AUTHORITY_URL`` (national clouds, the sandbox) or Microsoft's public cloud."""
    return os.environ.get(GRAPH_AUTHORITY_ENV, "").strip().rstrip("/") or DEFAULT_AUTHORITY


def graph_base_url() -> str:
    """``GRAPH_BASE_URL`` (national clouds, the sandbox) or ``https://graph.microsoft.com``."""
    return os.environ.get(GRAPH_BASE_ENV, "").strip().rstrip("/") or DEFAULT_GRAPH_BASE


def _ews_backend(config: ExchangeConfig, mailbox_settings: MailboxSettings | None) -> EwsBackend:
    return EwsBackend(
        settings_for(
            config,
            mailbox_settings,
            retry_budget_seconds=retry_budget_seconds(),
            public_folder_name=os.environ.get(PUBLIC_FOLDER_ENV, "").strip() or "PSA contacts",
            authority_url=os.environ.get(GRAPH_AUTHORITY_ENV, ""),
        )
    )


def forget_connections() -> None:
    """Close every connection to Exchange cached in this process, so none outlives the
    endpoint or credentials it was opened with (the General tab's settings changed).

    Graph sessions keep no connection between runs, and its cached tokens are keyed by the
    credentials they were issued for: only EWS connections are cached across sessions.
    """
    close_all_connections()


def retry_budget_seconds() -> float:
    """How long one backend call may wait for throttling (``EXCHANGE_RETRY_BUDGET_SECONDS``)."""
    try:
        return max(1.0, float(os.environ.get(RETRY_BUDGET_ENV, DEFAULT_RETRY_BUDGET)))
    except ValueError:
        return DEFAULT_RETRY_BUDGET


_retry_budget = retry_budget_seconds  # the name exchange_ext.tasks imports

_BUILDERS = {"ews": _ews_backend, "graph": _graph_backend}
