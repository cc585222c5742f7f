"""Who may use the control API: the sandbox's control token, and never a web page in a browser.

A page open in a local browser can send requests to http://127.0.0.1:<port>/_sandbox/... (CSRF
against localhost) or, after DNS rebinding, under a name of its own. These tests play such a
page with plain HTTP requests carrying the headers a browser would send (``Origin``,
``Sec-Fetch-Site``, a foreign ``Host``), each with the right token, so that only the browser
check can refuse them.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
from email.message import Message
from typing import Any

import pytest
import requests

from exchange_ext.sandbox import control
from exchange_ext.sandbox.server import SandboxHandle, load_config

from .test_control_api import call

RULE = {"kind": "latency", "latency_ms": 1}


def raw(handle: SandboxHandle, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A control request with exactly the headers given (no token added)."""
    return requests.request(method, f"{handle.control_url}{path}", verify=str(handle.ca_file),
                            timeout=10, **kwargs)  # fmt: skip


@pytest.fixture
def handle(start: Any) -> SandboxHandle:
    return start(config=load_config())


# ---------------------------------------------------------------------------- the token


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/faults"),
                                              ("POST", "/faults"), ("POST", "/reset")])  # fmt: skip
def test_a_request_without_the_token_is_refused(handle, method, path):
    reply = raw(handle, method, path, json=RULE if method == "POST" else None)

    assert reply.status_code == 403
    assert reply.headers["Content-Type"] == "application/json"
    assert "X-Sandbox-Token" in reply.json()["error"]
    assert handle.state.faults.list() == []


def test_a_wrong_token_is_refused(handle):
    token = handle.control_token
    wrong = {"X-Sandbox-Token": token[:-1] + ("B" if token.endswith("A") else "A")}

    refused = raw(handle, "POST", "/faults", json=RULE, headers=wrong)
    empty = raw(handle, "POST", "/faults", json=RULE, headers={"X-Sandbox-Token": ""})
    non_ascii = raw(handle, "GET", "/faults", headers={"X-Sandbox-Token": "t\u00e9st".encode()})

    assert refused.status_code == 403 and "wrong control token" in refused.json()["error"]
    assert empty.status_code == 403
    assert non_ascii.status_code == 403
    assert handle.state.faults.list() == []


def test_the_right_token_lets_the_request_through(handle):
    added = raw(handle, "POST", "/faults", json=RULE, headers=handle.control_headers)

    assert added.status_code == 201
    assert [f["kind"] for f in handle.state.faults.list()] == ["latency"]


def test_every_start_makes_a_new_token_and_a_token_opens_only_its_sandbox(start):
    first, second = start(config=load_config()), start(config=load_config())

    assert first.control_token != second.control_token
    assert len(first.control_token) >= 40  # 32 random bytes, URL-safe base64
    reply = raw(second, "GET", "/faults", headers=first.control_headers)
    assert reply.status_code == 403


def test_a_fixed_token_can_be_given_and_must_be_strong_enough(start):
    fixed = "reproducible-token-0123456789"
    handle = start(config=load_config(), control_token=fixed)

    assert handle.control_token == fixed
    assert raw(handle, "GET", "/faults", headers={"X-Sandbox-Token": fixed}).status_code == 200
    for weak in ("short", "has spaces in it, sixteen+", "line\nbreak-0123456789"):
        with pytest.raises(ValueError, match="control token"):
            start(config=load_config(), control_token=weak)


def test_reset_keeps_the_token(handle):
    token = handle.control_token

    assert call(handle, "POST", "/reset").ok

    assert handle.control_token == token
    assert call(handle, "GET", "/faults").ok


def test_the_ews_and_graph_endpoints_need_no_control_token(handle):
    ews = requests.post(handle.url, data=b"", verify=str(handle.ca_file), timeout=10)
    graph = requests.get(f"{handle.base_url}/v1.0/users/tech1@northwind.example/calendar",
                         verify=str(handle.ca_file), timeout=10)  # fmt: skip

    assert ews.status_code == 401  # their own authentication, not the control API's
    assert graph.status_code == 401


# ---------------------------------------------------------------------------- a browser page


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "https://evil.example", "null", "http://localhost:8000",
     "http://127.0.0.1:8000", "http://localhost.evil.example"],
)  # fmt: skip
def test_a_request_from_another_origin_is_refused_even_with_the_token(handle, origin):
    reply = call(handle, "POST", "/faults", json=RULE, headers={"Origin": origin})

    assert reply.status_code == 403
    assert "Origin" in reply.json()["error"] and "browser" in reply.json()["error"]
    assert handle.state.faults.list() == []


def test_a_request_from_the_sandboxs_own_origin_is_accepted(handle):
    for name in ("localhost", "127.0.0.1", "[::1]"):
        own = f"https://{name}:{handle.port}"
        assert call(handle, "GET", "/faults", headers={"Origin": own}).status_code == 200
    plain = f"http://localhost:{handle.port}"  # the scheme is part of the origin
    assert call(handle, "GET", "/faults", headers={"Origin": plain}).status_code == 403


@pytest.mark.parametrize(("site", "status"), [("cross-site", 403), ("same-site", 403),
                                              ("same-origin", 200), ("none", 200)])  # fmt: skip
def test_sec_fetch_site_from_another_site_is_refused(handle, site, status):
    reply = call(handle, "GET", "/faults", headers={"Sec-Fetch-Site": site})

    assert reply.status_code == status
    if status == 403:
        assert "Sec-Fetch-Site" in reply.json()["error"]


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "localhost.evil.example:{port}",
     "127.0.0.1.nip.io:{port}", "0.0.0.0:{port}", "10.0.0.1:{port}", "[::2]:{port}",
     "::1", "[127.0.0.1]:{port}", "localhost:port"],
)  # fmt: skip
def test_a_foreign_host_header_is_refused_dns_rebinding(handle, host):
    reply = call(handle, "POST", "/faults", json=RULE,
                 headers={"Host": host.format(port=handle.port)})  # fmt: skip

    assert reply.status_code == 403
    assert "Host" in reply.json()["error"] and "rebinding" in reply.json()["error"]
    assert handle.state.faults.list() == []


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "LOCALHOST:{port}", "localhost", "127.0.0.1:{port}",
             "127.0.0.2:{port}", "[::1]:{port}", "[::ffff:127.0.0.1]:{port}"],
)  # fmt: skip
def test_loopback_host_headers_are_accepted(handle, host):
    reply = call(handle, "GET", "/faults", headers={"Host": host.format(port=handle.port)})

    assert reply.status_code == 200


def test_a_request_without_a_host_header_is_refused(handle):
    context = ssl.create_default_context(cafile=str(handle.ca_file))
    request = f"GET /_sandbox/faults HTTP/1.0\r\nX-Sandbox-Token: {handle.control_token}\r\n\r\n"
    answer = b""
    with (
        socket.create_connection(("127.0.0.1", handle.port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname="localhost") as tls,
    ):
        tls.sendall(request.encode())
        while chunk := tls.recv(65536):
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 403")
    assert b"Host" in answer


def test_a_refused_request_with_a_body_still_gets_its_403(handle):
    body = b'{"kind": "latency", "latency_ms": 1, "pad": "' + b"x" * 200_000 + b'"}'

    reply = raw(handle, "POST", "/faults", data=body, headers={"Content-Type": "application/json"})

    assert reply.status_code == 403
    assert reply.headers.get("Connection") == "close"
    assert handle.state.faults.list() == []


# ---------------------------------------------------------------------------- the checks alone


def headers(**fields: str) -> Message:
    message = Message()
    for name, value in fields.items():
        message[name.replace("_", "-")] = value
    return message


def test_refusal_checks_host_then_origin_then_token():
    token = control.new_token()
    good = {"Host": "localhost:8443", "X_Sandbox_Token": token}

    assert control.refusal(token, headers(**good), scheme="https", port=8443) is None
    evil_host = headers(**{**good, "Host": "evil.example:8443"})
    assert "Host" in (control.refusal(token, evil_host, scheme="https", port=8443) or "")
    evil_origin = headers(**good, Origin="https://evil.example")
    assert "Origin" in (control.refusal(token, evil_origin, scheme="https", port=8443) or "")
    other_port = headers(**good, Origin="https://localhost:8444")
    assert control.refusal(token, other_port, scheme="https", port=8443) is not None
    default_port = headers(**{**good, "Host": "localhost"}, Origin="https://localhost")
    assert control.refusal(token, default_port, scheme="https", port=443) is None
    no_token = headers(Host="localhost:8443")
    assert "X-Sandbox-Token" in (control.refusal(token, no_token, scheme="https", port=8443) or "")


# ---------------------------------------------------------------------------- the token file


def test_the_token_file_is_private_and_removed_only_while_it_is_ours(tmp_path):
    previous = os.umask(0)  # the file is 0600 whatever the umask
    try:
        path = control.write_token_file(tmp_path / "sandbox" / "control-token", "first-0123456789")
    finally:
        os.umask(previous)

    assert path.read_text() == "first-0123456789\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    control.write_token_file(path, "second-token-0123456789")  # a later sandbox, same file
    control.remove_token_file(path, "first-0123456789")
    assert path.read_text() == "second-token-0123456789\n"
    control.remove_token_file(path, "second-token-0123456789")
    assert not path.exists()
    assert [p.name for p in tmp_path.joinpath("sandbox").iterdir()] == []  # no temp files left
