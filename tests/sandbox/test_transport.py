"""The sandbox's transport through real exchangelib and requests: TLS, auth, impersonation,
fault injection, the request log, schema validation and the management command.

The operations are a tiny test-local dispatcher (GetFolder only), so these tests exercise the
transport alone; the operations have their own suites.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import queue
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from exchangelib import DELEGATE, FaultTolerance
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInternalServerError,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    TransportError,
    UnauthorizedError,
)
from lxml import etree

from exchange_ext.sandbox import certificates
from exchange_ext.sandbox.contract import NS_M, NS_T, OperationRequest
from exchange_ext.sandbox.server import load_config

from .conftest import DEMO_PASSWORD, NO_IMPERSONATION_LOGIN, NO_IMPERSONATION_PASSWORD, make_account

PROJECT = Path(__file__).resolve().parents[2]
TECH1 = "tech1@northwind.example"
GET_ROOT = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <s:Header><t:RequestServerVersion Version="%s"/></s:Header>
  <s:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
    <m:FolderIds><t:DistinguishedFolderId Id="root"/></m:FolderIds></m:GetFolder></s:Body>
</s:Envelope>"""


class FolderDispatcher:
    """Answers GetFolder for distinguished folders; remembers every request it was given."""

    def __init__(self, valid: bool = True) -> None:
        self.calls: list[OperationRequest] = []
        self.valid = valid

    def __call__(self, request: OperationRequest, sandbox: Any) -> etree._Element:
        self.calls.append(request)
        response = etree.Element(f"{{{NS_M}}}GetFolderResponse", nsmap={"m": NS_M, "t": NS_T})
        messages = etree.SubElement(response, f"{{{NS_M}}}ResponseMessages")
        for folder_id in request.body.iter(f"{{{NS_T}}}DistinguishedFolderId"):
            message = etree.SubElement(
                messages, f"{{{NS_M}}}GetFolderResponseMessage", ResponseClass="Success"
            )
            etree.SubElement(message, f"{{{NS_M}}}ResponseCode").text = "NoError"
            folders = etree.SubElement(message, f"{{{NS_M}}}Folders")
            folder = etree.SubElement(folders, f"{{{NS_T}}}Folder")
            name = folder_id.get("Id")
            etree.SubElement(
                folder, f"{{{NS_T}}}FolderId", Id=f"{name}:{request.mailbox}", ChangeKey="AQ=="
            )
            etree.SubElement(folder, f"{{{NS_T}}}DisplayName").text = name
            if not self.valid:
                etree.SubElement(folder, f"{{{NS_T}}}NotInTheSchema")
        return response


@pytest.fixture
def dispatcher() -> FolderDispatcher:
    return FolderDispatcher()


@pytest.fixture
def ews(start, dispatcher) -> Any:
    """A sandbox with the default accounts and the test-local dispatcher."""
    return start(config=load_config(), dispatcher=dispatcher)


def basic(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "text/xml; charset=utf-8"}


def post(handle: Any, body: bytes = GET_ROOT % b"Exchange2016", **kwargs: Any) -> Any:
    kwargs.setdefault("headers", basic("tech1", DEMO_PASSWORD))
    kwargs.setdefault("verify", str(handle.ca_file))
    return requests.post(handle.url, data=body, timeout=10, **kwargs)


def add_fault(handle: Any, **rule: Any) -> dict[str, Any]:
    reply = requests.post(
        f"{handle.control_url}/faults", json=rule, headers=handle.control_headers,
        verify=str(handle.ca_file), timeout=10,
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    return reply.json()


# ---------------------------------------------------------------------------- TLS


def test_exchangelib_reaches_the_sandbox_over_tls_verified_by_the_test_ca(ews, dispatcher):
    account = make_account(ews, TECH1)

    assert account.root.name == "root"
    [call] = dispatcher.calls
    assert (call.name, call.caller, call.mailbox, call.impersonating) == (
        "GetFolder", "svc-sync", TECH1, True,
    )  # fmt: skip
    assert call.requested_version == "Exchange2016"
    assert call.time_zone_id == "UTC"


def test_the_ca_and_leaf_are_reused_across_restarts_and_name_localhost(tmp_path):
    first = certificates.ensure_certificates("ca", tmp_path)
    ca_pem = first.ca_file.read_bytes()
    again = certificates.ensure_certificates("ca", tmp_path)

    assert again == first and again.ca_file.read_bytes() == ca_pem
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_a_broken_certificate_file_is_regenerated(tmp_path):
    first = certificates.ensure_certificates("ca", tmp_path)
    first.cert_file.write_text("not a certificate")

    again = certificates.ensure_certificates("ca", tmp_path)

    x509.load_pem_x509_certificate(again.cert_file.read_bytes())


def test_a_verifying_client_refuses_the_selfsigned_certificate(start, dispatcher, sandbox_cert_dir):
    handle = start(tls="selfsigned", dispatcher=dispatcher, config=load_config())
    ca_file = certificates.ensure_certificates("ca", sandbox_cert_dir).ca_file

    assert handle.ca_file is None
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(handle.url, data=GET_ROOT, timeout=10, verify=str(ca_file))
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(handle.url, data=GET_ROOT, timeout=10)  # certifi's bundle
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        make_account(handle, TECH1).root  # noqa: B018
    assert dispatcher.calls == []


def test_plain_http_mode_serves_without_tls(start, dispatcher):
    handle = start(tls="none", dispatcher=dispatcher, config=load_config())

    assert handle.url.startswith("http://127.0.0.1:")
    assert post(handle).status_code == 200


# ---------------------------------------------------------------------------- HTTP basics


def test_the_endpoint_path_is_matched_case_insensitively_as_iis_does(ews):
    lower = requests.post(
        ews.url.replace("/EWS/Exchange.asmx", "/ews/exchange.asmx"),
        data=GET_ROOT % b"Exchange2016",
        headers=basic("tech1", DEMO_PASSWORD),
        verify=str(ews.ca_file),
        timeout=10,
    )

    assert lower.status_code == 200
    assert requests.get(ews.url, verify=str(ews.ca_file), timeout=10).status_code == 405
    other = requests.post(f"{ews.base_url}/owa/", verify=str(ews.ca_file), timeout=10)
    assert other.status_code == 404


def test_responses_carry_content_length_and_keep_the_connection_alive(ews):
    with requests.Session() as session:
        # verify per request: REQUESTS_CA_BUNDLE in the environment would beat session.verify
        replies = [
            session.post(
                ews.url,
                data=GET_ROOT % b"Exchange2016",
                timeout=10,
                headers=h,
                verify=str(ews.ca_file),
            )
            for h in (basic("tech1", DEMO_PASSWORD), basic("tech1", "wrong"))
        ]

    for reply in replies:
        assert reply.headers["Content-Length"] == str(len(reply.content))
        assert reply.headers.get("Connection", "").lower() != "close"
    assert [r.status_code for r in replies] == [200, 401]


def test_an_oversized_request_is_refused_with_413(ews, monkeypatch):
    monkeypatch.setattr("exchange_ext.sandbox.server.MAX_REQUEST_BYTES", 1000)

    assert post(ews, body=b"x" * 2000).status_code == 413


def test_the_server_version_header_matches_the_requested_version(start, dispatcher):
    auto = start(config=load_config(), dispatcher=dispatcher)
    online = start(config={**load_config(), "server_version": "online"}, dispatcher=dispatcher)

    def version(handle: Any, requested: bytes) -> dict[str, str]:
        root = etree.fromstring(post(handle, body=GET_ROOT % requested).content)
        return dict(root.find(f".//{{{NS_T}}}ServerVersionInfo").attrib)

    assert version(auto, b"Exchange2016")["MinorVersion"] == "1"
    assert version(auto, b"Exchange2016")["Version"] == "Exchange2016"
    assert version(auto, b"Exchange2013_SP1")["MinorVersion"] == "0"
    assert version(online, b"Exchange2016")["MinorVersion"] == "20"
    assert version(online, b"Exchange2016")["Version"] == "V2018_01_08"


def test_concurrent_clients_are_served(ews):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post(ews).status_code, range(24)))

    assert statuses == [200] * 24


# ---------------------------------------------------------------------------- authentication


def test_a_bad_password_gets_401_with_a_basic_challenge(ews):
    reply = post(ews, headers=basic("tech1", "wrong"))

    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert post(ews, headers={}).status_code == 401


def test_exchangelib_raises_unauthorized_on_a_bad_password(ews, dispatcher):
    account = make_account(ews, TECH1, password="wrong")

    with pytest.raises(UnauthorizedError):
        account.root  # noqa: B018
    assert dispatcher.calls == []


@pytest.mark.parametrize("login", ["tech1", "NORTHWIND\\tech1", "tech1@northwind.example"])
def test_the_three_windows_login_forms_are_accepted(ews, dispatcher, login):
    account = make_account(ews, TECH1, login=login, password=DEMO_PASSWORD, access_type=DELEGATE)

    account.root  # noqa: B018
    assert dispatcher.calls[0].caller == "tech1"
    assert post(ews, headers=basic("OTHERDOMAIN\\tech1", DEMO_PASSWORD)).status_code == 401


# ---------------------------------------------------------------------------- impersonation


def test_the_service_account_may_impersonate_any_mailbox(ews, dispatcher):
    make_account(ews, "tech2@northwind.example").root  # noqa: B018

    assert dispatcher.calls[0].mailbox == "tech2@northwind.example"
    [entry] = ews.state.requests.query()["requests"]
    assert entry["impersonation"] == "tech2@northwind.example"
    assert entry["caller"] == "svc-sync"


def test_impersonation_without_the_right_is_denied(ews, dispatcher):
    account = make_account(
        ews, TECH1, login=NO_IMPERSONATION_LOGIN, password=NO_IMPERSONATION_PASSWORD
    )

    with pytest.raises(ErrorImpersonateUserDenied):
        account.root  # noqa: B018
    assert dispatcher.calls == []


def test_impersonating_an_unknown_mailbox_fails_with_non_existent_mailbox(ews, dispatcher):
    with pytest.raises(ErrorNonExistentMailbox):
        make_account(ews, "nobody@northwind.example").root  # noqa: B018
    assert dispatcher.calls == []


def test_without_impersonation_the_callers_own_mailbox_is_the_default(ews, dispatcher):
    account = make_account(ews, TECH1, login="tech1", password=DEMO_PASSWORD, access_type=DELEGATE)

    account.root  # noqa: B018
    assert (dispatcher.calls[0].mailbox, dispatcher.calls[0].impersonating) == (TECH1, False)


# ---------------------------------------------------------------------------- faults


def test_server_busy_is_raised_with_its_back_off_under_failfast(ews, dispatcher):
    add_fault(ews, kind="server_busy", operation="GetFolder", back_off_ms=1500, count=1)

    with pytest.raises(ErrorServerBusy) as raised:
        make_account(ews, TECH1).root  # noqa: B018
    assert raised.value.back_off == 1.5
    assert dispatcher.calls == []


def test_server_busy_for_the_next_two_requests_then_success(ews, dispatcher):
    add_fault(ews, kind="server_busy", back_off_ms=100, count=2)
    account = make_account(ews, TECH1, retry_policy=FaultTolerance(max_wait=5))

    assert account.root.name == "root"
    log = ews.state.requests.query(operation="GetFolder")
    assert [e["response_code"] for e in log["requests"]] == [
        "ErrorServerBusy", "ErrorServerBusy", "NoError",
    ]  # fmt: skip
    assert log["counters"]["GetFolder"] == 3
    assert len(dispatcher.calls) == 1


def test_a_fault_for_another_mailbox_does_not_fire(ews, dispatcher):
    add_fault(ews, kind="server_busy", mailbox="tech2@northwind.example")

    make_account(ews, TECH1).root  # noqa: B018
    assert len(dispatcher.calls) == 1


def test_latency_delays_the_answer(ews):
    add_fault(ews, kind="latency", latency_ms=300)

    started = time.monotonic()
    make_account(ews, TECH1).root  # noqa: B018
    assert time.monotonic() - started >= 0.3


def test_http_503_carries_retry_after_and_exchangelib_treats_it_as_busy(ews, dispatcher):
    add_fault(ews, kind="http_status", status=503, retry_after=2, count=2)

    reply = post(ews)
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "2"
    assert reply.headers.get("Connection", "").lower() != "close"
    with pytest.raises(ErrorServerBusy, match="503"):
        make_account(ews, TECH1).root  # noqa: B018
    assert dispatcher.calls == []


def test_http_500_without_xml_is_not_a_soap_answer(ews):
    add_fault(ews, kind="http_status", status=500)

    with pytest.raises(TransportError):
        make_account(ews, TECH1).root  # noqa: B018


def test_a_reset_before_the_request_applies_nothing(ews, dispatcher):
    add_fault(ews, kind="reset_before", operation="GetFolder")

    with pytest.raises(ErrorTimeoutExpired, match="Connection"):
        make_account(ews, TECH1).root  # noqa: B018
    assert dispatcher.calls == []
    assert ews.state.requests.query()["requests"][0]["status"] == 0


def test_a_reset_after_the_request_applies_it_but_the_client_never_hears(ews, dispatcher):
    add_fault(ews, kind="reset_after", operation="GetFolder")

    with pytest.raises(ErrorTimeoutExpired):
        make_account(ews, TECH1).root  # noqa: B018
    assert len(dispatcher.calls) == 1
    assert make_account(ews, "tech2@northwind.example").root.name == "root"  # next one is fine


def test_a_truncated_body_is_cut_with_a_consistent_content_length(ews):
    add_fault(ews, kind="truncate", bytes=120)

    reply = post(ews)

    assert reply.status_code == 200
    assert len(reply.content) == 120 == int(reply.headers["Content-Length"])
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(reply.content)


def test_a_truncated_body_announced_in_full_breaks_the_connection(ews):
    add_fault(ews, kind="truncate", bytes=120, declared="full")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(ews)


def test_a_malformed_body_is_not_xml(ews):
    add_fault(ews, kind="malformed")

    reply = post(ews)

    assert reply.status_code == 200
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(reply.content)


def test_a_fault_fires_only_count_times_and_stays_listed(ews):
    rule = add_fault(ews, kind="http_status", status=503, count=1)

    assert [post(ews).status_code for _ in range(2)] == [503, 200]
    [listed] = ews.state.faults.list()
    assert (listed["id"], listed["remaining"], listed["fired"]) == (rule["id"], 0, 1)


def test_fault_counts_are_exact_under_concurrent_requests(ews):
    add_fault(ews, kind="http_status", status=503, count=5)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post(ews).status_code, range(20)))

    assert sorted(statuses) == [200] * 15 + [503] * 5


# ---------------------------------------------------------------------------- request log


def test_the_request_log_records_caller_mailbox_operation_status_and_fault(ews):
    add_fault(ews, kind="latency", latency_ms=10, count=1)
    make_account(ews, TECH1).root  # noqa: B018
    make_account(ews, "tech2@northwind.example").root  # noqa: B018
    post(ews, headers=basic("tech1", "wrong"))

    everything = requests.get(
        f"{ews.control_url}/requests", headers=ews.control_headers, verify=str(ews.ca_file),
        timeout=10,
    ).json()  # fmt: skip
    tech2 = requests.get(
        f"{ews.control_url}/requests",
        params={"mailbox": "tech2@northwind.example"},
        headers=ews.control_headers,
        verify=str(ews.ca_file),
        timeout=10,
    ).json()

    first, second, refused = everything["requests"]
    assert first["fault"].startswith("latency#")
    assert (first["caller"], first["mailbox"], first["status"]) == ("svc-sync", TECH1, 200)
    assert first["duration_ms"] >= 10
    assert refused["status"] == 401 and refused["caller"] is None
    assert everything["counters"] == {"GetFolder": 3}
    assert [e["id"] for e in tech2["requests"]] == [second["id"]]


# ---------------------------------------------------------------------------- schema


def test_an_invalid_request_gets_error_schema_validation_with_its_position(ews, dispatcher):
    invalid = GET_ROOT.replace(b"<t:BaseShape>IdOnly", b"<t:BaseShape>Everything")

    reply = post(ews, body=invalid % b"Exchange2016")

    assert reply.status_code == 500
    fault = etree.fromstring(reply.content)
    assert fault.findtext(".//{*}ResponseCode") == "ErrorSchemaValidation"
    assert fault.findtext(f".//{{{NS_T}}}LineNumber") == "6"
    assert "Everything" in fault.findtext(f".//{{{NS_T}}}Violation")
    assert dispatcher.calls == []
    assert ews.state.validator.counts["request"] == 1


def test_a_request_that_is_not_xml_gets_error_schema_validation(ews):
    reply = post(ews, body=b"<s:Envelope")

    assert reply.status_code == 500
    assert b"ErrorSchemaValidation" in reply.content


def test_a_request_with_a_doctype_is_refused_without_expanding_entities(ews, dispatcher):
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&b;</s:Body></s:Envelope>"""

    reply = post(ews, body=bomb)

    assert reply.status_code == 500
    assert b"DOCTYPE" in reply.content
    assert dispatcher.calls == []


def test_an_invalid_response_is_a_500_when_validation_is_fatal(start):
    handle = start(config=load_config(), dispatcher=FolderDispatcher(valid=False))

    with pytest.raises(ErrorInternalServerError, match="schema validation"):
        make_account(handle, TECH1).root  # noqa: B018
    report = handle.state.validator.report()
    assert report["failures"]["response"] == 1
    assert "NotInTheSchema" in report["recent"][0]["message"]
    handle.state.validator.reset()  # this failure was the point of the test


def test_an_invalid_response_is_only_counted_when_validation_is_not_fatal(start):
    handle = start(config=load_config(), dispatcher=FolderDispatcher(valid=False), validate=True)

    assert make_account(handle, TECH1).root.name == "root"
    assert handle.state.validator.counts["response"] == 1
    handle.state.validator.reset()


# ---------------------------------------------------------------------------- command


def test_the_management_command_prints_its_endpoint_and_stops_on_sigterm(tmp_path):
    state = tmp_path / "state.json"
    command = [sys.executable, "manage.py", "exchange_sandbox", "--port", "0",
               "--state", str(state), "--cert-dir", str(tmp_path / "certs")]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("EXCHANGE_SANDBOX_TOKEN", None)
    token_file = tmp_path / "certs" / "control-token"
    process = subprocess.Popen(
        command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        lines = _read_until(process, "Press Ctrl+C", timeout=30)
        url = next(line.split()[-1] for line in lines if "listening on" in line)
        ca_file = next(line.split(": ", 1)[1] for line in lines if line.startswith("CA file"))
        assert url.startswith("https://localhost:") and url.endswith("/EWS/Exchange.asmx")
        assert any("svc-sync" in line and "Impersonation" in line for line in lines)
        context = ssl.create_default_context(cafile=ca_file)
        assert context.get_ca_certs()
        status = requests.post(url, data=b"", verify=ca_file, timeout=10).status_code
        assert status == 401
        # The control API: its URL line as before, then the token line, the token in its file.
        control = next(line.split()[2] for line in lines if line.startswith("Control API: "))
        assert control == url.replace("/EWS/Exchange.asmx", "/_sandbox/")
        [token_line] = [line for line in lines if line.startswith("Control token: ")]
        token = token_line.split()[2]
        assert token_line == (
            f"Control token: {token}  (send as X-Sandbox-Token; also in {token_file})"
        )
        assert len(token) >= 40 and token_file.read_text() == f"{token}\n"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        faults = f"{control}faults"
        with_token = requests.get(faults, headers={"X-Sandbox-Token": token}, verify=ca_file,
                                  timeout=10)  # fmt: skip
        without = requests.get(faults, verify=ca_file, timeout=10)
        assert (with_token.status_code, without.status_code) == (200, 403)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert state.is_file()
    assert not token_file.exists()  # a stopped sandbox leaves no token behind


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Lines of output up to ``marker``; a reader thread keeps the wait bounded."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} within {timeout}s: {seen}")
