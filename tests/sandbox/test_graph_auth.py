"""Graph sandbox: the Entra ID token endpoint (secret, certificate assertion, msal), its AADSTS
errors, access tokens (401), application permissions and mailbox scope (403), unknown users."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from exchange_ext.sandbox.server import SandboxHandle, load_config
from tests import clock
from tests.sandbox.graph_client import (
    APP_ID,
    APP_SECRET,
    NOPERM_APP_ID,
    NOPERM_APP_SECRET,
    SCOPE,
    SCOPED_APP_ID,
    SCOPED_APP_SECRET,
    TENANT_DOMAIN,
    TENANT_ID,
    GraphClient,
    control_session,
    graph_session,
    request_token,
)

CERT_APP_ID = "3c9d6b5a-4e7f-4a81-9c23-d4e5f6071829"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture(scope="module")
def key_and_cert() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "psa-graph-test")])
    now = clock.now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip


def _register_cert_app(handle: SandboxHandle, cert: x509.Certificate) -> None:
    reply = control_session(handle).post(
        f"{handle.control_url}/graph/apps",
        json={
            "client_id": CERT_APP_ID,
            "display_name": "cert app",
            "certificates": [_pem(cert)],
            "permissions": ["Calendars.ReadWrite"],
            "mailboxes": "all",
        },
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["certificates"][0]["sha1"] == cert.fingerprint(hashes.SHA1()).hex()


def _assertion(key: rsa.RSAPrivateKey, cert: x509.Certificate, aud: str, **overrides: Any) -> str:
    header = {"alg": "RS256", "typ": "JWT", "x5t": _b64(cert.fingerprint(hashes.SHA1()))}
    header.update(overrides.pop("header", {}))
    now = int(clock.now().timestamp())
    claims = {"aud": aud, "iss": CERT_APP_ID, "sub": CERT_APP_ID, "jti": str(uuid.uuid4()),
              "nbf": now, "exp": now + 600}  # fmt: skip
    claims.update(overrides)
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    ).encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + _b64(signature)


def _token_url(handle: SandboxHandle, tenant: str = TENANT_ID) -> str:
    return f"{handle.base_url}/{tenant}/oauth2/v2.0/token"


def _assert_entra_error(reply: requests.Response, status: int, error: str, code: int) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


# ---------------------------------------------------------------------------- token endpoint


def test_secret_gives_a_bearer_token_usable_on_graph(sandbox: SandboxHandle) -> None:
    reply = request_token(sandbox)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert claims["appid"] == APP_ID and claims["tid"] == TENANT_ID
    assert "Calendars.ReadWrite" in claims["roles"]
    # The tenant's domain names the same tenant.
    assert request_token(sandbox, tenant=TENANT_DOMAIN).status_code == 200
    graph = GraphClient(sandbox)
    assert graph.get("users/tech1@northwind.example/calendar").status_code == 200


def test_certificate_assertion_rs256(sandbox: SandboxHandle, key_and_cert: Any) -> None:
    key, cert = key_and_cert
    _register_cert_app(sandbox, cert)
    form = {
        "client_id": CERT_APP_ID, "grant_type": "client_credentials", "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _assertion(key, cert, _token_url(sandbox)),
    }  # fmt: skip
    reply = graph_session(sandbox).post(_token_url(sandbox), data=form, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["access_token"]


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        ("other_key", 401, 700027),  # signed with a key that is not registered
        ("unknown_thumbprint", 401, 700027),
        ("wrong_audience", 401, 700027),
        ("expired", 401, 700024),
    ],
)
def test_bad_certificate_assertions_are_refused(
    sandbox: SandboxHandle, key_and_cert: Any, tamper: str, status: int, code: int
) -> None:
    key, cert = key_and_cert
    _register_cert_app(sandbox, cert)
    aud = _token_url(sandbox)
    if tamper == "other_key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assertion = _assertion(other, cert, aud)
    elif tamper == "unknown_thumbprint":
        assertion = _assertion(key, cert, aud, header={"x5t": _b64(b"\x01" * 20)})
    elif tamper == "wrong_audience":
        assertion = _assertion(key, cert, "https://login.microsoftonline.com/x/oauth2/v2.0/token")
    else:
        now = int(clock.now().timestamp())
        assertion = _assertion(key, cert, aud, exp=now - 3600, nbf=now - 7200)
    form = {
        "client_id": CERT_APP_ID, "grant_type": "client_credentials", "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }  # fmt: skip
    reply = graph_session(sandbox).post(aud, data=form, timeout=10)
    _assert_entra_error(reply, status, "invalid_client", code)


def test_token_errors_as_entra_sends_them(sandbox: SandboxHandle) -> None:
    _assert_entra_error(
        request_token(sandbox, tenant="00000000-0000-0000-0000-00000000dead"), 400,
        "invalid_request", 90002,
    )  # fmt: skip
    _assert_entra_error(
        request_token(sandbox, client_id=str(uuid.uuid4())), 400, "unauthorized_client", 700016
    )
    _assert_entra_error(
        request_token(sandbox, secret="not-the-secret"), 401, "invalid_client", 7000215
    )
    _assert_entra_error(
        request_token(sandbox, scope="https://graph.microsoft.com/Calendars.Read"), 400,
        "invalid_scope", 1002012,
    )  # fmt: skip


# ---------------------------------------------------------------------------- msal


def _msal_session(handle: SandboxHandle) -> requests.Session:
    session = graph_session(handle)  # verifies against the sandbox CA
    return session


def test_msal_with_secret_against_the_sandbox(sandbox: SandboxHandle) -> None:
    # As the product configures it when GRAPH_AUTHORITY_URL points at the sandbox.
    app = msal.ConfidentialClientApplication(
        APP_ID, client_credential=APP_SECRET, authority=f"{sandbox.base_url}/{TENANT_ID}",
        instance_discovery=False, http_client=_msal_session(sandbox),
    )  # fmt: skip
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    again = app.acquire_token_for_client(scopes=[SCOPE])
    assert again["access_token"] == result["access_token"]  # msal's cache
    reply = graph_session(sandbox).get(
        f"{sandbox.base_url}/v1.0/users/tech2@northwind.example/calendar",
        headers={"Authorization": f"Bearer {result['access_token']}"}, timeout=10,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text


def test_msal_with_verify_ca_file_and_wrong_secret(sandbox: SandboxHandle) -> None:
    app = msal.ConfidentialClientApplication(
        APP_ID, client_credential="wrong", authority=f"{sandbox.base_url}/{TENANT_DOMAIN}",
        instance_discovery=False, verify=str(sandbox.ca_file),
        http_client=_msal_session(sandbox),
    )  # fmt: skip
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]


def test_msal_unknown_tenant_fails_discovery(sandbox: SandboxHandle) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            APP_ID, client_credential=APP_SECRET,
            authority=f"{sandbox.base_url}/nosuchtenant.example", instance_discovery=False,
            http_client=_msal_session(sandbox),
        )  # fmt: skip


@pytest.mark.parametrize("with_public_certificate", [False, True])
def test_msal_with_certificate(
    sandbox: SandboxHandle, key_and_cert: Any, with_public_certificate: bool
) -> None:
    key, cert = key_and_cert
    _register_cert_app(sandbox, cert)
    credential: dict[str, str] = {"private_key": _key_pem(key)}
    if with_public_certificate:  # msal then signs PS256 with an x5t#S256 header
        credential["public_certificate"] = _pem(cert)
    else:  # RS256 with the SHA-1 thumbprint
        credential["thumbprint"] = cert.fingerprint(hashes.SHA1()).hex().upper()
    app = msal.ConfidentialClientApplication(
        CERT_APP_ID, client_credential=credential, authority=f"{sandbox.base_url}/{TENANT_ID}",
        instance_discovery=False, http_client=_msal_session(sandbox),
    )  # fmt: skip
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, result


def test_discovery_documents(sandbox: SandboxHandle) -> None:
    session = graph_session(sandbox)
    doc = session.get(
        f"{sandbox.base_url}/{TENANT_DOMAIN}/v2.0/.well-known/openid-configuration", timeout=10
    ).json()
    assert doc["token_endpoint"] == f"{sandbox.base_url}/{TENANT_DOMAIN}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{sandbox.base_url}/{TENANT_ID}/v2.0"
    instance = session.get(
        f"{sandbox.base_url}/common/discovery/instance",
        params={"authorization_endpoint": f"{sandbox.base_url}/{TENANT_ID}/oauth2/v2.0/authorize",
                "api-version": "1.1"}, timeout=10,
    ).json()  # fmt: skip
    assert instance["tenant_discovery_endpoint"].endswith(
        f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"
    )


# ---------------------------------------------------------------------------- access checks


def _graph_error(reply: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    assert {"date", "request-id", "client-request-id"} <= error["innerError"].keys()
    return error


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-jwt", "IDX14100"),
        ("Bearer a.b.c", "Access token validation failure"),
    ],
)
def test_missing_or_invalid_token_is_401(
    sandbox: SandboxHandle, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    reply = graph_session(sandbox).get(
        f"{sandbox.base_url}/v1.0/users/tech1@northwind.example/calendar", headers=headers,
        timeout=10,
    )  # fmt: skip
    error = _graph_error(reply, 401, "InvalidAuthenticationToken")
    assert message in error["message"]
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_tampered_and_expired_tokens_are_401(sandbox: SandboxHandle) -> None:
    graph = GraphClient(sandbox)
    head, claims, sig = graph.token.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=="))
    data["roles"] = ["Calendars.ReadWrite", "Mail.ReadWrite"]
    forged = head + "." + _b64(json.dumps(data).encode()) + "." + sig
    reply = graph.get("users/tech1@northwind.example/calendar",
                      headers={"Authorization": f"Bearer {forged}"})  # fmt: skip
    _graph_error(reply, 401, "InvalidAuthenticationToken")
    sandbox.state.clock_offset = dt.timedelta(hours=2)
    error = _graph_error(graph.get("users/tech1@northwind.example/calendar"), 401,
                         "InvalidAuthenticationToken")  # fmt: skip
    assert "expired" in error["message"]


def test_missing_permission_is_403(sandbox: SandboxHandle) -> None:
    graph = GraphClient(sandbox, NOPERM_APP_ID, NOPERM_APP_SECRET)
    error = _graph_error(graph.get("users/tech1@northwind.example/events"), 403,
                         "ErrorAccessDenied")  # fmt: skip
    assert error["message"] == "Access is denied. Check credentials and try again."
    assert graph.get("users/tech1@northwind.example").status_code == 200  # User.Read.All


def test_read_only_permission_cannot_write(start: Callable[..., SandboxHandle]) -> None:
    config = load_config()
    config["graph"]["apps"][0]["permissions"] = ["Calendars.Read"]
    handle = start(config=config)
    graph = GraphClient(handle)
    assert graph.get("users/tech1@northwind.example/events").status_code == 200
    reply = graph.post("users/tech1@northwind.example/events", {"subject": "x"})
    _graph_error(reply, 403, "ErrorAccessDenied")


def test_mailbox_outside_the_app_scope_is_403(sandbox: SandboxHandle) -> None:
    graph = GraphClient(sandbox, SCOPED_APP_ID, SCOPED_APP_SECRET)
    assert graph.get("users/tech1@northwind.example/calendar").status_code == 200
    error = _graph_error(graph.get("users/tech3@northwind.example/calendar"), 403,
                         "ErrorAccessDenied")  # fmt: skip
    assert "Access to OData is disabled" in error["message"]


def test_unknown_users(sandbox: SandboxHandle) -> None:
    graph = GraphClient(sandbox)
    error = _graph_error(graph.get("users/nobody@northwind.example/calendar"), 404,
                         "ErrorInvalidUser")  # fmt: skip
    assert "nobody@northwind.example" in error["message"]
    _graph_error(graph.get("users/onprem@northwind.example/calendar"), 404,
                 "MailboxNotEnabledForRESTAPI")  # fmt: skip
    # The user's object id works as well as the UPN.
    user = graph.get("users/tech1@northwind.example").json()
    assert graph.get(f"users/{user['id']}/calendar").json()["owner"]["address"] == (
        "tech1@northwind.example"
    )


def test_requests_are_logged_with_operation_and_app(sandbox: SandboxHandle) -> None:
    graph = GraphClient(sandbox)
    graph.get("users/tech1@northwind.example/calendar")
    log = control_session(sandbox).get(f"{sandbox.control_url}/requests", timeout=10).json()
    last = log["requests"][-1]
    assert last["operation"] == "graph:calendar.get"
    assert last["caller"] == APP_ID and last["mailbox"] == "tech1@northwind.example"
    assert log["counters"]["graph:token"] == 1


def test_me_needs_a_signed_in_user(sandbox: SandboxHandle) -> None:
    reply = GraphClient(sandbox).get("me/events")
    assert reply.status_code == 400
    assert "delegated" in reply.json()["error"]["message"]
