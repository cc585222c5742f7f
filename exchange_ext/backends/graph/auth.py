"""App-only tokens for Microsoft Graph (client credentials) through msal.

https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
https://learn.microsoft.com/entra/identity-platform/certificate-credentials

- The authority is ``GRAPH_AUTHORITY_URL`` (default ``https://login.microsoftonline.com``) +
  ``/{tenant}``; the scope ``https://<Graph host>/.default`` (see ``GraphCredentials.scope``).
- A client secret, or a certificate: the PEM holds the certificate and its private key; the
  assertion is signed with the key and names the certificate by thumbprint. We hand msal the
  certificate itself, so it signs PS256 with the SHA-256 thumbprint (``x5t#S256``), which
  Entra ID recommends; :func:`certificate_thumbprint` (SHA-1, as the Entra portal displays
  it) is what the connection test shows so an admin can compare it with the registration.
- ``instance_discovery=False`` always. Instance discovery asks login.microsoftonline.com
  whether an authority host is a Microsoft cloud; msal skips it for Microsoft's own hosts
  anyway (public and national clouds), and our authority is operator configuration, not user
  input — for the sandbox or a private proxy it would only send the host name to Microsoft and
  fail offline.
- TLS to the authority is verified like everything else, and the address its host resolves to
  is checked on every new connection (``http_client`` is a
  :class:`~exchange_ext.backends.graph.http.TimeoutSession`: ``verify`` is
  :func:`exchange_ext.backends.tls.ca_bundle_path`, the transport refuses loopback and
  link-local addresses unless ``EXCHANGE_ALLOWED_NETWORKS`` lists them — an
  :class:`~exchange_ext.backends.base.AddressRefused` from :meth:`TokenSource.token`).
- Tokens: msal keeps them in the application's in-memory cache and returns the cached one
  until shortly before ``expires_in`` (msal refreshes ahead of expiry). Applications are kept
  per (authority, tenant, client, credential digest) for the life of the process, so many
  sessions and runs share one token. Nothing here logs a token or a secret.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from exchange_ext.backends.base import AppCredentialsRefused, Unavailable
from exchange_ext.backends.graph.http import TimeoutSession
from psa.log_redaction import remember_secret

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE = "https://graph.microsoft.com"
# Graph's hosts in Microsoft's clouds (https://learn.microsoft.com/graph/deployments).
GRAPH_CLOUD_HOSTS = frozenset({
    "graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
})  # fmt: skip

# AADSTS codes → the credential field they point at
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
_FIELD_BY_CODE = {
    90002: "tenant_id",  # tenant not found
    900023: "tenant_id",  # tenant identifier neither a GUID nor a domain
    90013: "tenant_id",
    700016: "client_id",  # application not found in the directory
    700038: "client_id",
    7000215: "client_secret",  # invalid client secret
    7000222: "client_secret",  # expired client secret
    7000218: "client_secret",  # neither a secret nor an assertion
    700027: "client_certificate",  # assertion signature / key not registered
    700024: "client_certificate",  # assertion outside its validity
    700023: "client_certificate",
    50027: "client_certificate",  # malformed JWT
    5002723: "client_certificate",
    50012: "client_certificate",
}


class TokenRefused(AppCredentialsRefused):
    """The token endpoint refused the app; ``field`` names the setting to fix (or "").

    The app registration is every mailbox's: a sync that meets this stops them all at once
    (docs/sync-rules.md, "Statuses").
    """

    def __init__(self, message: str, *, field: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class GraphCredentials:
    """What identifies the app: tenant, client id, and a secret or a PEM certificate + key."""

    tenant_id: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    certificate_pem: str = field(default="", repr=False)
    authority_url: str = DEFAULT_AUTHORITY
    graph_base_url: str = DEFAULT_GRAPH_BASE

    def __post_init__(self) -> None:
        # Never in a log line, whatever logs them (psa/log_redaction.py).
        remember_secret(self.client_secret)
        remember_secret(self.certificate_pem)

    @property
    def authority(self) -> str:
        return f"{self.authority_url.rstrip('/')}/{self.tenant_id.strip()}"

    @property
    def scope(self) -> str:
        """``https://<Graph host>/.default`` for Microsoft's clouds; a Graph host we do not
        know (the sandbox, a proxy) stands in for the public cloud's Graph, whose resource
        identifier is ``https://graph.microsoft.com``."""
        host = urlsplit(self.graph_base_url).netloc.lower()
        return f"https://{host if host in GRAPH_CLOUD_HOSTS else 'graph.microsoft.com'}/.default"

    def cache_key(self) -> tuple[str, ...]:
        # A digest, not the secret, so the key is safe to show in a debugger or a repr.
        digest = hashlib.sha256(
            f"{self.client_secret}\0{self.certificate_pem}".encode()
        ).hexdigest()
        return (self.authority, self.client_id.strip(), self.scope, digest)


def certificate_thumbprint(pem: str) -> str:
    """The SHA-1 thumbprint (upper-case hex) of the PEM's certificate, as Entra shows it."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # an identifier, not a MAC


def _client_credential(credentials: GraphCredentials) -> Any:
    if not credentials.certificate_pem:
        return credentials.client_secret
    pem = credentials.certificate_pem.encode()
    try:
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise TokenRefused(
            "The certificate field must hold the certificate and its unencrypted private key "
            f"in PEM format ({error}).",
            field="client_certificate",
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {"private_key": key_pem, "public_certificate": cert_pem}


class TokenSource:
    """One app's tokens (thread-safe). Call :meth:`token` before every request."""

    def __init__(self, credentials: GraphCredentials, timeout: float | tuple[float, float]):
        self.credentials = credentials
        self.timeout = timeout
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    def token(self) -> str:
        """A current access token; raises :class:`TokenRefused` or :class:`Unavailable`."""
        with self._lock:
            app = self._application()
            try:
                result = app.acquire_token_for_client(scopes=[self.credentials.scope])
            except ValueError as error:
                raise _discovery_error(error) from None
            except OSError as error:  # requests' errors derive from OSError
                raise Unavailable(f"The sign-in service could not be reached: {error}") from None
        if "access_token" not in result:
            raise refused(result)
        token = str(result["access_token"])
        remember_secret(token)  # no log line may show it, whatever logs it
        return token

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            credentials = self.credentials
            try:
                self._app = msal.ConfidentialClientApplication(
                    credentials.client_id.strip(),
                    client_credential=_client_credential(credentials),
                    authority=credentials.authority,
                    instance_discovery=False,
                    http_client=TimeoutSession(self.timeout),
                    timeout=self.timeout,
                )
            except ValueError as error:
                # msal reads the OpenID configuration here: an unknown tenant fails now.
                raise _discovery_error(error) from None
            except OSError as error:
                raise Unavailable(f"The sign-in service could not be reached: {error}") from None
        return self._app


def _discovery_error(error: ValueError) -> TokenRefused:
    return TokenRefused(
        f"The sign-in service does not know this tenant: check the Tenant ID ({str(error)[:200]}).",
        field="tenant_id",
    )


def refused(result: dict[str, Any]) -> TokenRefused:
    """A plain-words error for msal's error result (``error``, ``error_codes``, description)."""
    codes = [int(c) for c in result.get("error_codes") or () if str(c).isdigit()]
    code = codes[0] if codes else None
    field_name = _FIELD_BY_CODE.get(code or 0, "")
    if not field_name and result.get("error") == "invalid_client":
        field_name = "client_secret"
    description = str(result.get("error_description") or result.get("error") or "")
    first_line = description.splitlines()[0] if description else "no reason given"
    return TokenRefused(
        f"{_ADVICE.get(field_name, 'The sign-in was refused')}: {first_line}",
        field=field_name,
        code=code,
    )


_ADVICE = {
    "tenant_id": "The tenant was not found: check the Tenant ID",
    "client_id": "The application was not found in this tenant: check the Application (client) ID",
    "client_secret": "The client secret was refused (wrong or expired): enter a current secret",
    "client_certificate": "The certificate was refused: upload the certificate registered for "
    "the app, with its private key",
}

_sources: dict[tuple[str, ...], TokenSource] = {}
_sources_lock = threading.Lock()


def token_source(
    credentials: GraphCredentials, timeout: float | tuple[float, float] = (10.0, 30.0)
) -> TokenSource:
    """The process-wide token source for these credentials (one token cache per app)."""
    key = credentials.cache_key()
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            source = _sources[key] = TokenSource(credentials, timeout)
        return source


def forget_token_sources() -> None:
    """Drop every cached application and token (configuration changed; tests)."""
    with _sources_lock:
        _sources.clear()
