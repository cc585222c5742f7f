"""How the configuration maps onto an EWS client: endpoint URL, pinned version, login name,
and the :class:`~exchange_ext.backends.ews.backend.EwsSettings` the factory builds from them.

Pure functions (no network). The sync and the connection test use the same settings.
"""

from __future__ import annotations

from typing import Any

from exchangelib import BASIC, DELEGATE, IMPERSONATION, OAUTH2, Build, Version

from exchange_ext.backends.base import AuthFailed
from exchange_ext.backends.ews.backend import (
    EwsSettings,
    SessionCredentials,
    SessionOAuth2Credentials,
)
from exchange_ext.models import ExchangeConfig, ExchangeVersion, MailboxSettings
from exchange_ext.secrets import reveal

DEFAULT_VIRTUAL_DIRECTORY = "/EWS/Exchange.asmx"

# Pinning build and API version means exchangelib sends no version-guessing requests
# (docs/sync-rules.md, "Backends"). EWS has no "Exchange2019" RequestServerVersion: Exchange
# 2019 and Exchange Online speak the Exchange2016 schema (types.xsd ExchangeVersionType;
# https://learn.microsoft.com/exchange/client-developer/web-service-reference/requestserverversion).
_VERSIONS = {
    ExchangeVersion.EXCHANGE_2013: (Build(15, 0, 847, 0), "Exchange2013_SP1"),
    ExchangeVersion.EXCHANGE_2016: (Build(15, 1, 0, 0), "Exchange2016"),
    ExchangeVersion.EXCHANGE_2019: (Build(15, 2, 0, 0), "Exchange2016"),
    ExchangeVersion.ONLINE: (Build(15, 20, 0, 0), "Exchange2016"),
}


def pinned_version(exchange_version: str) -> Version:
    """The exchangelib Version for a config's ``exchange_version`` value."""
    build, api_version = _VERSIONS[ExchangeVersion(exchange_version)]
    return Version(build=build, api_version=api_version)


def virtual_directory_path(virtual_directory: str) -> str:
    """The endpoint path: the configured virtual directory with a leading ``/``, or the default."""
    path = (virtual_directory or "").strip()
    if not path:
        return DEFAULT_VIRTUAL_DIRECTORY
    return path if path.startswith("/") else f"/{path}"


def endpoint_url(config: ExchangeConfig) -> str:
    """``https://<server_address><virtual directory>`` — never plain HTTP, never autodiscover."""
    return f"https://{config.server_address.strip().lower()}" + virtual_directory_path(
        config.virtual_directory
    )


def login_name(username: str, domain: str) -> str:
    """The Basic-auth login: ``DOMAIN\\user`` when the domain is given separately.

    A username that already carries its domain (``DOMAIN\\user`` or ``user@domain``) is used as
    typed (validators.validate_credentials_domain rejects a conflicting Domain field).
    """
    username, domain = username.strip(), domain.strip()
    if not domain or "\\" in username or "@" in username:
        return username
    return f"{domain}\\{username}"


def settings_for(
    config: ExchangeConfig,
    mailbox_settings: MailboxSettings | None,
    *,
    retry_budget_seconds: float,
    public_folder_name: str,
    authority_url: str = "",
) -> EwsSettings:
    """The EWS settings for ``config`` (and, with per-resource credentials, that resource).

    - Office 365 without Graph: OAuth (client credentials grant) with the app registration,
      impersonating each mailbox (app-only EWS must); ``authority_url`` replaces
      ``https://login.microsoftonline.com`` (national clouds, the sandbox).
    - Basic auth with ``use_for_all_users``, or without ``mailbox_settings``: the sync
      account (``DOMAIN\\user`` when the domain is separate), impersonating each mailbox.
    - Basic auth otherwise: the resource's own username and password (delegate access).

    Raises :class:`AuthFailed` when the username needed is blank, and
    :class:`~exchange_ext.crypto.SecretDecryptionError` when a stored secret cannot be
    decrypted (the factory reports that as AuthFailed).
    """
    common: dict[str, Any] = {
        "endpoint": endpoint_url(config),
        "version": pinned_version(config.exchange_version),
        "retry_budget_seconds": retry_budget_seconds,
        "public_folder_name": public_folder_name,
    }
    if not config.use_basic_auth:
        return EwsSettings(**common, **_oauth_access(config, authority_url))
    return EwsSettings(**common, **_basic_access(config, mailbox_settings))


def _oauth_access(config: ExchangeConfig, authority_url: str) -> dict[str, Any]:
    """App-only OAuth with the app registration, impersonating each mailbox."""
    client_id, tenant_id = config.client_id.strip(), config.tenant_id.strip()
    secret = reveal(config.client_secret)
    return {
        "make_credentials": lambda: SessionOAuth2Credentials(
            client_id=client_id, client_secret=secret, tenant_id=tenant_id, authority=authority_url
        ),
        "auth_type": OAUTH2,
        "access_type": IMPERSONATION,
    }


def _basic_access(
    config: ExchangeConfig, mailbox_settings: MailboxSettings | None
) -> dict[str, Any]:
    """Basic auth: the sync account impersonating each mailbox, or the resource's own login."""
    if config.use_for_all_users or mailbox_settings is None:
        username, password, access_type = config.username, config.password, IMPERSONATION
    else:
        username, password = mailbox_settings.username, mailbox_settings.password
        access_type = DELEGATE
    if not username.strip():
        raise AuthFailed("no Exchange username is configured for this mailbox")
    login, plaintext = login_name(username, config.domain), reveal(password)
    return {
        "make_credentials": lambda: SessionCredentials(login, plaintext),
        "auth_type": BASIC,
        "access_type": access_type,
    }
