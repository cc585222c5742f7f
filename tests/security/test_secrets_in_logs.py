"""No secret in any log line at any log level, from our code or any library (SPEC §8).

A whole sync — EWS with Basic auth, EWS with OAuth (client credentials), Microsoft Graph with a
client secret and with a certificate — runs against the in-process sandbox over real HTTPS with
every logger at DEBUG (the root and every logger that exists, exchangelib's runtime clamp
switched off), and the output is taken from the root's console handler exactly as
``settings.LOGGING`` configured it (its filters and formatter), only writing into a buffer.
That output must hold none of the configured secrets (passwords, client secrets, the private
key, the Basic credentials as sent) nor any access token the sandbox issued during the run.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from exchangelib.protocol import BaseProtocol, close_connections

from exchange_ext.backends.ews import backend as ews_backend
from exchange_ext.backends.graph import auth as graph_auth
from exchange_ext.models import ExchangeConfig, SyncRun
from exchange_ext.sandbox.graph.tokens import app_from_config
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from exchange_ext.secrets import Secret
from psa.log_redaction import RedactSecrets
from tests.builders import make_appointment
from tests.certificates import self_signed
from tests.clock import day
from tests.integration.sync_rules.rules import GRAPH_SECRET, TENANT, Harness

pytestmark = pytest.mark.django_db

SYNC_LOGIN, SYNC_PASSWORD = "NORTHWIND\\svc-sync", "sandbox-sync"
# An app registration for app-only EWS (Office 365 without Graph), registered per test.
EWS_APP, EWS_APP_SECRET = "3c9d6b5a-4e7f-4a81-9c23-d4e5f6071829", "sandbox-ews-app-secret"
# An app registration for Graph with a certificate credential, registered per test.
CERT_APP = "4d0e7c6b-5f80-4b92-8d34-e5f607182930"
KINDS = ("ews-basic", "ews-oauth", "graph", "graph-certificate")


@functools.cache
def certificate_and_key() -> tuple[str, str]:
    """A self-signed certificate and its private key (PEM), made once per process."""
    return self_signed()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    cert_dir = tmp_path_factory.mktemp("secrets-in-logs-certs")
    handle = start_sandbox(load_config(), tls="ca", port=0, validate="fatal", cert_dir=cert_dir)
    yield handle
    handle.stop()


@pytest.fixture(params=KINDS)
def harness(
    request: pytest.FixtureRequest, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    """The product configured as an administrator would for the kind, against a fresh sandbox."""
    kind = str(request.param)
    sandbox.state.reset()
    graph_auth.forget_token_sources()
    # The product installs its adapter class-globally; put back whatever another suite had.
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", BaseProtocol.HTTP_ADAPTER_CLS)
    for name, value in Harness.environment(sandbox).items():
        monkeypatch.setenv(name, value)
    harness = Harness(sandbox, kind.partition("-")[0], ExchangeConfig.load())
    harness.configure(harness.kind)
    if kind == "ews-oauth":
        sandbox.state.graph.apps.add_app(
            app_from_config(
                {"client_id": EWS_APP, "display_name": "PSA Exchange sync (EWS)",
                 "secrets": [EWS_APP_SECRET], "permissions": ["full_access_as_app"]},
                TENANT,
            )
        )  # fmt: skip
        harness.set(use_basic_auth=False, use_graph=False, client_id=EWS_APP,
                    client_secret=Secret(EWS_APP_SECRET))  # fmt: skip
        assert harness.config.backend_name == "ews"
    if kind == "graph-certificate":
        certificate, key = certificate_and_key()
        sandbox.state.graph.apps.add_app(
            app_from_config(
                {"client_id": CERT_APP, "certificates": [certificate],
                 "permissions": ["Calendars.ReadWrite", "Contacts.ReadWrite"]},
                TENANT,
            )
        )  # fmt: skip
        harness.set(client_id=CERT_APP, client_certificate=Secret(certificate + key))
    harness.variant = kind  # type: ignore[attr-defined]
    yield harness
    close_connections()
    graph_auth.forget_token_sources()


def configured_console_handler() -> logging.Handler:
    """The handler ``settings.LOGGING`` put on the root logger (named after its config key)."""
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    return handler


@pytest.fixture
def debug_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every logger at DEBUG, and the configured console handler writing into a buffer."""
    handler = configured_console_handler()
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    root = logging.getLogger()
    loggers = [root] + [
        logger for logger in root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    # The backend keeps exchangelib above DEBUG at run time; the defence must hold without it.
    monkeypatch.setattr(ews_backend, "keep_exchangelib_quiet", lambda: None)
    try:
        yield buffer
    finally:
        handler.setStream(previous_stream)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


def secrets_of(harness: Harness) -> dict[str, str]:
    """Every secret the run used, by what it is; and every token the sandbox issued."""
    basic = base64.b64encode(f"{SYNC_LOGIN}:{SYNC_PASSWORD}".encode("latin-1")).decode()
    found = {
        "sync account password": SYNC_PASSWORD,
        "Basic credentials": basic,
        "Graph client secret": GRAPH_SECRET,
        "EWS app client secret": EWS_APP_SECRET,
    }
    if harness.variant == "graph-certificate":
        key = certificate_and_key()[1]
        found["private key"] = key
        found["private key, first line"] = key.splitlines()[1]
    for number, token in enumerate(harness.sandbox.state.graph.signer.issued_tokens()):
        found[f"access token {number}"] = token
        found[f"access token {number}, signature"] = token.rpartition(".")[2]
    return found


def sync_everything(harness: Harness) -> None:
    """Three runs: an export and an import; an edit on each side; a run that fails on a
    hostile response (the libraries' error paths log the request)."""
    tech = harness.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    item_id = harness.outlook_create(tech, "Dentist", day(2, "15:00"))
    run = harness.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    appointment.title = "Visit, moved"
    appointment.save()
    harness.outlook_update(tech, item_id, subject="Dentist, later")
    run = harness.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    harness.fault(kind="gzip_bomb", operation=harness.read_operation, inflated_mib=72)
    run = harness.sync(tech)
    assert run.outcome == SyncRun.Outcome.FAILED, run.error


# What the libraries write at DEBUG on each path: proof the capture saw them.
LIBRARY_LINES = {
    "ews-basic": ["Request headers:", "POST'ing to"],
    "ews-oauth": ["Request to fetch token completed", "Request headers:"],
    "graph": ["Starting new HTTPS connection"],
    "graph-certificate": ["Starting new HTTPS connection"],
}


def test_a_whole_sync_at_debug_writes_no_secret_or_token_to_the_log(
    harness: Any, debug_log: io.StringIO
) -> None:
    sync_everything(harness)
    output = debug_log.getvalue()
    for line in LIBRARY_LINES[harness.variant]:
        assert line in output, f"the capture holds no {line!r}: were the loggers at DEBUG?"
    secrets = secrets_of(harness)
    if harness.variant != "ews-basic":
        assert any(name.startswith("access token") for name in secrets), "no token was issued"
    leaked = sorted(name for name, value in secrets.items() if value in output)
    assert not leaked, f"in the log at DEBUG: {', '.join(leaked)}"
    if harness.kind == "ews":  # (msal masks its own token log; the others do not)
        assert "[REDACTED]" in output, "the libraries logged credentials: redacted here"


def test_every_handler_logging_configures_redacts_secrets() -> None:
    """A record reaches only the handlers of its logger and of its ancestors: every handler
    the configuration installed, anywhere, carries the filter."""
    root = logging.getLogger()
    loggers = [root] + [
        logger for logger in root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    handlers = {
        handler
        for logger in loggers
        for handler in logger.handlers
        # Libraries' NullHandlers write nothing; pytest's capture is the test run's own.
        if not isinstance(handler, logging.NullHandler)
        and not type(handler).__module__.startswith("_pytest")
    }
    assert configured_console_handler() in handlers
    unfiltered = [h for h in handlers if not any(isinstance(f, RedactSecrets) for f in h.filters)]
    assert not unfiltered, unfiltered
