"""App registrations, the Entra ID token endpoint (client credentials) and access tokens.

- ``AppRegistry``: tenants (id + verified domains) and registered apps (client id, secrets,
  certificates, application permissions, mailbox scope). The scope models RBAC for
  Applications / an ApplicationAccessPolicy: ``"all"`` or a list of mailbox addresses.
  https://learn.microsoft.com/exchange/permissions-exo/application-rbac
- ``token_endpoint``: ``POST /{tenant}/oauth2/v2.0/token`` with ``client_secret`` or a
  certificate ``client_assertion`` (RS256 + ``x5t`` or PS256 + ``x5t#S256``), errors with the
  AADSTS codes Entra ID sends.
  https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  https://learn.microsoft.com/entra/identity-platform/certificate-credentials
- ``openid_configuration`` / ``instance_discovery``: the documents msal reads before it asks for
  a token (``{authority}/v2.0/.well-known/openid-configuration``).
- Access tokens are JWT-shaped (so a client may read ``roles``/``exp``) but signed with HMAC
  (HS256) under a per-sandbox secret; only this sandbox can check them. A token is for one
  resource (``aud``): Microsoft Graph (scope ``https://graph.microsoft.com/.default``, the
  Graph application permissions as ``roles``) or Exchange Online's EWS (scope
  ``https://outlook.office365.com/.default``, ``full_access_as_app``), and is accepted only
  there. The signer keeps the last tokens it issued (``issued_tokens``) for tests that look
  for them where they must not be (logs).
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import EntraError, GraphError

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
# App-only EWS in Exchange Online: the Office 365 Exchange Online API and its one application
# permission (https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-authenticate-an-ews-application-by-using-oauth).
EXCHANGE_RESOURCE = "https://outlook.office365.com"
EXCHANGE_DEFAULT_SCOPE = "https://outlook.office365.com/.default"
EXCHANGE_PERMISSIONS = frozenset({"full_access_as_app"})
RESOURCE_OF_SCOPE = {GRAPH_DEFAULT_SCOPE: GRAPH_RESOURCE, EXCHANGE_DEFAULT_SCOPE: EXCHANGE_RESOURCE}
ISSUED_TOKENS_KEPT = 1000
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME = 3599  # what Entra ID returns for app-only tokens (expires_in)
MAX_FORM_BYTES = 64 * 1024
# Application permissions an app may be given (the Graph names).
KNOWN_PERMISSIONS = frozenset(
    {
        "Calendars.Read", "Calendars.ReadWrite", "Contacts.Read", "Contacts.ReadWrite",
        "User.Read.All", "Mail.Read", "Mail.ReadWrite", "MailboxSettings.Read",
    }
) | EXCHANGE_PERMISSIONS  # fmt: skip


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------------------- registry


@dataclass
class Certificate:
    """A registered certificate credential: its public key and both thumbprints (hex)."""

    pem: str
    public_key: rsa.RSAPublicKey
    sha1: str
    sha256: str


@dataclass
class App:
    """One app registration in one tenant (secrets kept as SHA-256 hashes)."""

    client_id: str
    tenant_id: str
    display_name: str = ""
    secret_hashes: list[bytes] = field(default_factory=list, repr=False)
    certificates: list[Certificate] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)
    mailboxes: str | list[str] = "all"

    def check_secret(self, secret: str) -> bool:
        given = hashlib.sha256(secret.encode()).digest()
        return any(hmac.compare_digest(given, h) for h in self.secret_hashes)

    def may_access(self, mailbox: str) -> bool:
        return self.mailboxes == "all" or mailbox.lower() in self.mailboxes

    def to_public(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "tenant_id": self.tenant_id,
            "display_name": self.display_name,
            "secrets": len(self.secret_hashes),
            "certificates": [{"sha1": c.sha1, "sha256": c.sha256} for c in self.certificates],
            "permissions": list(self.permissions),
            "mailboxes": self.mailboxes,
        }


def _certificate(pem: Any) -> Certificate:
    if not isinstance(pem, str):
        raise ValueError("certificates must be PEM strings")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("only RSA certificates are supported (as Entra ID requires)")
    return Certificate(
        pem, key, cert.fingerprint(hashes.SHA1()).hex(), cert.fingerprint(hashes.SHA256()).hex()
    )


def app_from_config(entry: Any, default_tenant: str) -> App:
    """Build an App from a config/control-API entry; ValueError with a readable message.

    Keys: ``client_id`` (GUID, required), ``tenant_id`` (default: the first tenant),
    ``display_name``, ``secrets`` (list of strings), ``certificates`` (list of PEM
    certificates), ``permissions`` (application permission names), ``mailboxes`` (``"all"``
    or a list of SMTP addresses).
    """
    if not isinstance(entry, dict):
        raise ValueError("an app must be a JSON object")
    try:
        client_id = str(uuid.UUID(str(entry.get("client_id"))))
    except ValueError:
        raise ValueError("client_id must be a GUID") from None
    secrets_ = entry.get("secrets", [])
    if not isinstance(secrets_, list) or not all(isinstance(s, str) and s for s in secrets_):
        raise ValueError("secrets must be a list of non-empty strings")
    permissions = entry.get("permissions", [])
    if not isinstance(permissions, list) or not set(permissions) <= KNOWN_PERMISSIONS:
        raise ValueError(f"permissions must be a list of {', '.join(sorted(KNOWN_PERMISSIONS))}")
    mailboxes = entry.get("mailboxes", "all")
    if mailboxes != "all":
        if not isinstance(mailboxes, list) or not all(
            isinstance(m, str) and "@" in m for m in mailboxes
        ):
            raise ValueError('mailboxes must be "all" or a list of SMTP addresses')
        mailboxes = [m.lower() for m in mailboxes]
    certificates = entry.get("certificates", [])
    if not isinstance(certificates, list):
        raise ValueError("certificates must be a list of PEM strings")
    return App(
        client_id=client_id,
        tenant_id=str(entry.get("tenant_id") or default_tenant).lower(),
        display_name=str(entry.get("display_name", "")),
        secret_hashes=[hashlib.sha256(s.encode()).digest() for s in secrets_],
        certificates=[_certificate(c) for c in certificates],
        permissions=list(permissions),
        mailboxes=mailboxes,
    )


class AppRegistry:
    """Tenants and apps (thread-safe). Tenants are ``{"id": GUID, "domains": [...]}``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, list[str]] = {}
        self._apps: dict[str, App] = {}

    def load(self, graph_config: dict[str, Any]) -> None:
        """Replace everything with the ``graph`` section of the sandbox config."""
        with self._lock:
            self._tenants = {}
            self._apps = {}
        for tenant in graph_config.get("tenants", []):
            self.add_tenant(tenant)
        for entry in graph_config.get("apps", []):
            self.add_app(app_from_config(entry, self.default_tenant()))

    def add_tenant(self, entry: Any) -> None:
        if not isinstance(entry, dict):
            raise ValueError("a tenant must be a JSON object")
        try:
            tenant_id = str(uuid.UUID(str(entry.get("id"))))
        except ValueError:
            raise ValueError("tenant id must be a GUID") from None
        domains = [str(d).lower() for d in entry.get("domains", [])]
        with self._lock:
            self._tenants[tenant_id] = domains

    def default_tenant(self) -> str:
        with self._lock:
            return next(iter(self._tenants), "")

    def add_app(self, app: App) -> None:
        """Add or replace an app; its tenant must be registered."""
        with self._lock:
            if app.tenant_id not in self._tenants:
                raise ValueError(f"unknown tenant {app.tenant_id}")
            self._apps[app.client_id] = app

    def apps(self) -> list[App]:
        with self._lock:
            return list(self._apps.values())

    def tenants(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": t, "domains": list(d)} for t, d in self._tenants.items()]

    def resolve_tenant(self, given: str) -> str | None:
        """The tenant GUID named by ``given`` (its GUID or one of its domains), or None."""
        given = given.lower()
        with self._lock:
            for tenant_id, domains in self._tenants.items():
                if given == tenant_id or given in domains:
                    return tenant_id
        return None

    def tenant_names(self, tenant_id: str) -> list[str]:
        with self._lock:
            return [tenant_id, *self._tenants.get(tenant_id, [])]

    def app(self, client_id: str) -> App | None:
        with self._lock:
            return self._apps.get(client_id.lower())


# ---------------------------------------------------------------------------- access tokens


class TokenSigner:
    """Mints and checks the sandbox's access tokens (HS256 under a per-sandbox secret)."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)
        self._issued: collections.deque[str] = collections.deque(maxlen=ISSUED_TOKENS_KEPT)

    def issued_tokens(self) -> list[str]:
        """The tokens minted so far (the last ``ISSUED_TOKENS_KEPT``), oldest first."""
        return list(self._issued)

    def mint(self, app: App, now: dt.datetime, audience: str = GRAPH_RESOURCE) -> str:
        """An access token of ``app`` for ``audience`` (Graph or Exchange Online), carrying the
        app's application permissions on that resource as ``roles``."""
        issued = int(now.timestamp())
        for_exchange = audience == EXCHANGE_RESOURCE
        roles = [p for p in app.permissions if (p in EXCHANGE_PERMISSIONS) == for_exchange]
        header = {"typ": "JWT", "alg": "HS256", "kid": "sandbox"}
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{app.tenant_id}/",
            "iat": issued,
            "nbf": issued,
            "exp": issued + TOKEN_LIFETIME,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{app.client_id}")),
            "roles": sorted(roles),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{app.client_id}")),
            "tid": app.tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        token = signing_input + "." + b64url(self._sign(signing_input))
        self._issued.append(token)
        return token

    def _sign(self, signing_input: str) -> bytes:
        return hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()

    def verify(
        self, authorization: str | None, now: dt.datetime, audience: str = GRAPH_RESOURCE
    ) -> dict[str, Any]:
        """The claims of a ``Bearer`` token for ``audience``; 401 InvalidAuthenticationToken
        otherwise.

        Messages are the ones Graph sends for an empty, malformed, tampered or expired token.
        https://learn.microsoft.com/graph/resolve-auth-errors
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _invalid_token("Access token is empty.")
        parts = token.split(".")
        if len(parts) != 3:
            raise _invalid_token(
                "IDX14100: JWT is not well formed, there are no dots (.).\n"
                "The token needs to be in JWS or JWE Compact Serialization Format."
            )
        try:
            signature = b64url_decode(parts[2])
            claims = json.loads(b64url_decode(parts[1]))
        except (ValueError, binascii.Error):
            raise _invalid_token("Access token validation failure.") from None
        expected = self._sign(parts[0] + "." + parts[1])
        if not hmac.compare_digest(signature, expected) or not isinstance(claims, dict):
            raise _invalid_token("Access token validation failure. Invalid audience.")
        if not claims.get("nbf", 0) <= now.timestamp() < claims.get("exp", 0):
            raise _invalid_token("Lifetime validation failed, the token is expired.")
        if claims.get("aud") != audience:
            raise _invalid_token("Access token validation failure. Invalid audience.")
        return claims


def _invalid_token(message: str) -> GraphError:
    # Graph adds a WWW-Authenticate challenge naming the authority and Graph's app id.
    challenge = (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
        'authorize", client_id="00000003-0000-0000-c000-000000000000"'
    )
    return GraphError(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": challenge})


# ---------------------------------------------------------------------------- token endpoint


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (last value wins); EntraError if bad."""
    if len(body) > MAX_FORM_BYTES:
        raise EntraError(400, "invalid_request", 90014, "The request body is too large.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise EntraError(400, "invalid_request", 900144, "The request body is not UTF-8.") from None
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _missing(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144,
        f"The request body must contain the following parameter: '{name}'.",
    )  # fmt: skip


def issue_token(
    registry: AppRegistry,
    signer: TokenSigner,
    tenant: str,
    form: dict[str, str],
    token_url: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The token response for a client credentials request, or raise ``EntraError``.

    ``token_url`` is this endpoint's own URL (``https://host:port/{tenant}/oauth2/v2.0/token``)
    which a certificate assertion's ``aud`` must name.
    """
    # https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    tenant_id = registry.resolve_tenant(tenant)
    if tenant_id is None:
        raise EntraError(
            400, "invalid_request", 90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant.",
        )  # fmt: skip
    grant = form.get("grant_type")
    if not grant:
        raise _missing("grant_type")
    if grant != "client_credentials":
        raise EntraError(
            400, "unsupported_grant_type", 70003,
            "The app requested an unsupported grant type.",
        )  # fmt: skip
    scope = form.get("scope")
    if not scope:
        raise _missing("scope")
    if scope.split() not in ([GRAPH_DEFAULT_SCOPE], [EXCHANGE_DEFAULT_SCOPE]):
        raise EntraError(
            400, "invalid_scope", 1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )  # fmt: skip
    assertion = form.get("client_assertion")
    client_id = form.get("client_id") or (_assertion_issuer(assertion) if assertion else "")
    if not client_id:
        raise _missing("client_id")
    app = registry.app(client_id)
    if app is None or app.tenant_id != tenant_id:
        raise EntraError(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant}'. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You may have "
            "sent your authentication request to the wrong tenant.",
        )  # fmt: skip
    if assertion:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(
                400, "invalid_request", 50027,
                "Invalid client_assertion_type; it must be " + ASSERTION_TYPE + ".",
            )  # fmt: skip
        _check_assertion(app, assertion, registry.tenant_names(tenant_id), token_url, now)
    elif "client_secret" in form:
        if not app.check_secret(form["client_secret"]):
            raise EntraError(
                401, "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{app.client_id}'.",
            )  # fmt: skip
    else:
        raise EntraError(
            401, "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )  # fmt: skip
    return {
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME,
        "ext_expires_in": TOKEN_LIFETIME,
        "access_token": signer.mint(app, now, RESOURCE_OF_SCOPE[scope.strip()]),
    }


def _assertion_issuer(assertion: str) -> str:
    try:
        claims = json.loads(b64url_decode(assertion.split(".")[1]))
        return str(claims.get("iss", "")) if isinstance(claims, dict) else ""
    except (ValueError, IndexError, binascii.Error):
        return ""


def _bad_assertion(app: App, reason: str, thumbprint: str = "") -> EntraError:
    detail = f"Reason - {reason}"
    if thumbprint:
        detail += f", Thumbprint of key used by client: '{thumbprint.upper()}'"
    return EntraError(
        401, "invalid_client", 700027,
        f"Client assertion contains an invalid signature. [{detail}, Please visit the Azure "
        f"Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id "
        f"'{app.client_id}'.]",
    )  # fmt: skip


def _check_assertion(
    app: App, assertion: str, tenant_names: list[str], token_url: str, now: dt.datetime
) -> None:
    """Verify a client assertion JWT (RFC 7523) against the app's certificates."""
    # https://learn.microsoft.com/entra/identity-platform/certificate-credentials
    parts = assertion.split(".")
    if len(parts) != 3:
        raise EntraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, binascii.Error):
        raise _malformed() from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _malformed()
    cert, thumbprint = _find_certificate(app, header)
    if cert is None:
        raise _bad_assertion(app, "The key was not found.", thumbprint)
    signing_input = (parts[0] + "." + parts[1]).encode()
    alg = header.get("alg")
    if alg == "RS256":
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        raise _bad_assertion(app, f"The signing algorithm '{alg}' is not supported.", thumbprint)
    try:
        cert.public_key.verify(signature, signing_input, pad, hashes.SHA256())
    except InvalidSignature:
        raise _bad_assertion(
            app, "The provided signature value did not match the expected signature value.",
            thumbprint,
        ) from None  # fmt: skip
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise EntraError(
            401, "invalid_client", 700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )  # fmt: skip
    if not _audience_ok(claims.get("aud"), tenant_names, token_url):
        raise EntraError(
            401, "invalid_client", 700027,
            "Client assertion failed signature validation. [Reason - The audience claim "
            f"'{claims.get('aud')}' is not this token endpoint.]",
        )  # fmt: skip
    stamp = now.timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise EntraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.")
    # Entra allows five minutes of clock skew.
    if not nbf - 300 <= stamp <= exp + 300:
        raise EntraError(
            401, "invalid_client", 700024, "Client assertion is not within its valid time range."
        )
    if not claims.get("jti"):
        raise EntraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.")


def _malformed() -> EntraError:
    return EntraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.")


def _find_certificate(app: App, header: dict[str, Any]) -> tuple[Certificate | None, str]:
    for claim, attr in (("x5t#S256", "sha256"), ("x5t", "sha1")):
        value = header.get(claim)
        if not isinstance(value, str):
            continue
        try:
            thumbprint = b64url_decode(value).hex()
        except (ValueError, binascii.Error):
            return None, ""
        for cert in app.certificates:
            if hmac.compare_digest(getattr(cert, attr), thumbprint):
                return cert, thumbprint
        return None, thumbprint
    return None, ""


def _audience_ok(aud: Any, tenant_names: list[str], token_url: str) -> bool:
    if not isinstance(aud, str):
        return False
    given, own = urlsplit(aud), urlsplit(token_url)
    if (given.scheme, given.netloc.lower()) != (own.scheme, own.netloc.lower()):
        return False
    segments = given.path.strip("/").split("/")
    if not segments or segments[0].lower() not in tenant_names:
        return False
    return segments[1:] in (["oauth2", "v2.0", "token"], ["oauth2", "token"])


# ---------------------------------------------------------------------------- discovery


def openid_configuration(base: str, tenant_id: str, given: str) -> dict[str, Any]:
    """The OpenID Connect metadata of a tenant, pointing back at the sandbox.

    msal needs ``authorization_endpoint`` and ``token_endpoint``; the rest mirrors Entra ID.
    https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
    """
    root = f"{base}/{given}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post", "private_key_jwt", "client_secret_basic",
        ],
        "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }  # fmt: skip


def instance_discovery(base: str, authorization_endpoint: str) -> dict[str, Any]:
    """``GET /common/discovery/instance``: what msal asks unless ``instance_discovery=False``."""
    host = urlsplit(base).netloc
    path = urlsplit(authorization_endpoint).path.strip("/").split("/")
    tenant = path[0] if path and path[0] else "common"
    return {
        "tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }
