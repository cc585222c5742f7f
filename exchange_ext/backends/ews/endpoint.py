"""How the configuration maps onto an EWS client: endpoint URL, pinned version, login name.

Pure functions (no network), shared by the connection test and the EWS backend.
"""

from __future__ import annotations

from exchangelib import Build, Version

from exchange_ext.models import ExchangeConfig, ExchangeVersion

DEFAULT_VIRTUAL_DIRECTORY = "/EWS/Exchange.asmx"

# Pinning build and API version means exchangelib sends no version-guessing requests
# (protocols.md §1.2). EWS has no "Exchange2019" RequestServerVersion: Exchange 2019 and
# Exchange Online speak the Exchange2016 schema (types.xsd ExchangeVersionType;
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
