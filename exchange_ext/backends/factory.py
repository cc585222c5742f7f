"""Which backend a configuration gets (SPEC §5).

- Basic auth (on-premises) → EWS with the sync account impersonating each mailbox when
  ``use_for_all_users``, else with the resource's own credentials (delegate access).
- Office 365 without Graph → EWS with OAuth (client credentials, impersonation).
- Office 365 with Graph → :class:`~exchange_ext.backends.graph.backend.GraphBackend` (app-only,
  ``GRAPH_AUTHORITY_URL`` / ``GRAPH_BASE_URL`` for national clouds and the sandbox).
"""

from __future__ import annotations

import os
from typing import Any

from exchangelib import BASIC, DELEGATE, IMPERSONATION, OAUTH2

from exchange_ext.backends.base import AuthFailed, ExchangeBackend
from exchange_ext.backends.ews.backend import (
    EwsBackend,
    EwsSettings,
    SessionCredentials,
    SessionOAuth2Credentials,
)
from exchange_ext.backends.ews.endpoint import endpoint_url, login_name, pinned_version
from exchange_ext.backends.graph.auth import (
    DEFAULT_AUTHORITY,
    DEFAULT_GRAPH_BASE,
    GraphCredentials,
)
from exchange_ext.backends.graph.backend import GraphBackend, GraphSettings
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.secrets import Secret, UndecryptableSecret

#: Seconds one backend call may spend waiting for throttling before raising Throttled; keep it
#: well under the task timeout (DESIGN §4: budget < timeout < retry).
RETRY_BUDGET_ENV = "EXCHANGE_RETRY_BUDGET_SECONDS"
DEFAULT_RETRY_BUDGET = 120.0
GRAPH_AUTHORITY_ENV = "GRAPH_AUTHORITY_URL"
GRAPH_BASE_ENV = "GRAPH_BASE_URL"
PUBLIC_FOLDER_ENV = "EXCHANGE_PUBLIC_CONTACTS_FOLDER"


def backend_for(
    config: ExchangeConfig, *, mailbox_settings: MailboxSettings | None = None
) -> ExchangeBackend:
    """The backend for ``config`` (and, with per-resource credentials, for that resource).

    Raises :class:`AuthFailed` when the credentials needed are missing or cannot be
    decrypted.
    """
    builder = _BUILDERS[config.backend_name]
    return builder(config, mailbox_settings)


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
    """The app registration of ``config``; :class:`AuthFailed` when a part is missing."""
    tenant_id, client_id = config.tenant_id.strip(), config.client_id.strip()
    secret, certificate = _reveal(config.client_secret), _reveal(config.client_certificate)
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
    common: dict[str, Any] = {
        "endpoint": endpoint_url(config),
        "version": pinned_version(config.exchange_version),
        "retry_budget_seconds": retry_budget_seconds(),
        "public_folder_name": os.environ.get(PUBLIC_FOLDER_ENV, "").strip() or "PSA contacts",
    }
    if not config.use_basic_auth:
        return EwsBackend(EwsSettings(**common, **_oauth(config)))
    if config.use_for_all_users or mailbox_settings is None:
        username, password, access_type = config.username, config.password, IMPERSONATION
    else:
        username, password = mailbox_settings.username, mailbox_settings.password
        access_type = DELEGATE
    if not username.strip():
        raise AuthFailed("no Exchange username is configured for this mailbox")
    login, plaintext = login_name(username, config.domain), _reveal(password)
    return EwsBackend(
        EwsSettings(
            **common,
            make_credentials=lambda: SessionCredentials(login, plaintext),
            auth_type=BASIC,
            access_type=access_type,
        )
    )


def _oauth(config: ExchangeConfig) -> dict[str, Any]:
    client_id, tenant_id = config.client_id.strip(), config.tenant_id.strip()
    secret = _reveal(config.client_secret)
    authority = os.environ.get(GRAPH_AUTHORITY_ENV, "")
    return {
        "make_credentials": lambda: SessionOAuth2Credentials(
            client_id=client_id, client_secret=secret, tenant_id=tenant_id, authority=authority
        ),
        "auth_type": OAUTH2,
        # App-only tokens must impersonate the mailbox (protocols.md §1.4).
        "access_type": IMPERSONATION,
    }


def _reveal(value: Secret | str | None) -> str:
    if isinstance(value, UndecryptableSecret):
        raise AuthFailed("a stored secret cannot be decrypted (the keys changed): enter it again")
    if isinstance(value, Secret):
        return value.reveal()
    return value or ""


def retry_budget_seconds() -> float:
    """How long one backend call may wait for throttling (``EXCHANGE_RETRY_BUDGET_SECONDS``)."""
    try:
        return max(1.0, float(os.environ.get(RETRY_BUDGET_ENV, DEFAULT_RETRY_BUDGET)))
    except ValueError:
        return DEFAULT_RETRY_BUDGET


_retry_budget = retry_budget_seconds  # the name exchange_ext.tasks imports

_BUILDERS = {"ews": _ews_backend, "graph": _graph_backend}
