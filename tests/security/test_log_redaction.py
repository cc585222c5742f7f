"""The log redaction (psa/log_redaction.py): what it rewrites, and that the configured handler
applies it to the message with its arguments, to exception text and to stack info."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from exchange_ext.backends.ews.backend import SessionCredentials, SessionOAuth2Credentials
from exchange_ext.backends.graph.auth import GraphCredentials
from exchange_ext.secrets import Secret
from psa import log_redaction
from psa.log_redaction import REDACTED, redact, remember_secret

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJhcHBpZCI6IjBmNmEzZTJkIn0.c2lnbmF0dXJlLXBhcnQ"


@pytest.fixture(autouse=True)
def _forget_remembered() -> Iterator[None]:
    log_redaction.forget_secrets()
    yield
    log_redaction.forget_secrets()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'Authorization': 'Basic TkFNRTpwYXNz'}", "{'Authorization': 'Basic [REDACTED]'}"),
        ("Authorization: Bearer abc.def\r\nHost: x", "Authorization: Bearer [REDACTED]\r\nHost: x"),
        ('{"authorization": "opaque-value"}', '{"authorization": "[REDACTED]"}'),
        ("proxy-authorization=Negotiate YIIabc", "proxy-authorization=Negotiate [REDACTED]"),
        ("sent Bearer 0123456789abcdef to x", "sent Bearer [REDACTED] to x"),
        ("grant_type=client_credentials&client_secret=s3cr%2Bt&scope=x",
         "grant_type=client_credentials&client_secret=[REDACTED]&scope=x"),
        ("b'refresh_token=abc&password=hunter22'",
         "b'refresh_token=[REDACTED]&password=[REDACTED]'"),
        ('{"access_token": "a\\"b", "expires_in": 3599}',
         '{"access_token": "[REDACTED]", "expires_in": 3599}'),
        ("{'client_secret': 'x', 'passwd': 'y'}",
         "{'client_secret': '[REDACTED]', 'passwd': '[REDACTED]'}"),
        (f"token {JWT} expired", "token [REDACTED] expired"),
        ("key=-----BEGIN PRIVATE KEY-----\\nMIIEv\\n-----END PRIVATE KEY-----!",
         "key=[REDACTED PRIVATE KEY]!"),
    ],
)  # fmt: skip
def test_secret_shapes_are_redacted_in_any_rendering(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        'WWW-Authenticate: Basic realm="PSA Exchange sandbox"',
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common"',
        "GET /v1.0/users/x/calendarView/delta?$deltatoken=abcdefgh12345678 HTTP/1.1",
        "exchange sync of mailbox 7 failed: The Exchange server refused the credentials.",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_remembered_values_are_redacted_plain_and_escaped() -> None:
    remember_secret('p@ss w"rd+1')
    remember_secret("abc")  # too short to remember: it would blank out words
    line = 'plain p@ss w"rd+1, form p%40ss+w%22rd%2B1, json "p@ss w\\"rd+1", abc'
    assert redact(line) == f'plain {REDACTED}, form {REDACTED}, json "{REDACTED}", abc'


def test_every_secret_the_extension_holds_and_every_ews_token_it_obtains_is_remembered() -> None:
    Secret("stored-password-1")
    SessionCredentials("NORTHWIND\\svc", "typed-password-2")  # a connection test's form values
    GraphCredentials(tenant_id="t", client_id="c", client_secret="graph-client-secret")
    credentials = SessionOAuth2Credentials(
        client_id="c", client_secret="stored-client-secret", tenant_id="t"
    )
    credentials.on_token_auto_refreshed({"access_token": "opaque-ews-token", "expires_in": 60})
    assert credentials.access_token["access_token"] == "opaque-ews-token"
    line = (
        "stored-password-1 typed-password-2 graph-client-secret stored-client-secret "
        "opaque-ews-token"
    )
    assert redact(line) == " ".join([REDACTED] * 5)


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The console handler settings.LOGGING put on the root, writing into a buffer."""
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    logger = logging.getLogger("tests.some.library")
    logger.setLevel(logging.DEBUG)
    yield buffer
    logger.setLevel(logging.NOTSET)
    handler.setStream(previous)


def test_the_configured_handler_redacts_arguments_exception_text_and_stack_info(
    console: io.StringIO,
) -> None:
    logger = logging.getLogger("tests.some.library")
    remember_secret("the-client-secret")
    logger.debug("token request body %s", b"client_id=x&client_secret=the-client-secret")
    try:
        raise RuntimeError(f"server said: Authorization: Bearer {JWT}")
    except RuntimeError:
        logger.exception("request failed with %r", {"password": "hunter22"})
    logger.warning("look at %s", "the-client-secret", stack_info=True)
    logger.info("broken format %s %s", "the-client-secret")  # one argument short
    output = console.getvalue()
    for secret in ("the-client-secret", JWT, "hunter22"):
        assert secret not in output
    assert "client_secret=[REDACTED]" in output
    assert "RuntimeError: server said: Authorization: Bearer [REDACTED]" in output
    assert "{'password': '[REDACTED]'}" in output
    assert "Stack (most recent call last)" in output
    assert "broken format %s %s ('[REDACTED]',)" in output
