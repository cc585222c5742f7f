"""Shared fixtures for the sandbox tests: running sandboxes and exchangelib accounts against them.

exchangelib is configured exactly as the product configures it: a pinned service endpoint (no
autodiscover), Basic auth, a pinned Exchange 2016 build, FailFast, and TLS trust of the sandbox's
CA through ``BaseProtocol.HTTP_ADAPTER_CLS`` (see docs/sandbox.md, "Trusting the CA").

Every sandbox a test starts runs with fatal schema validation, and ``_no_schema_violations``
fails the test if any response of it failed validation against Microsoft's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSTimeZone,
    FailFast,
    Version,
)
from exchangelib.protocol import BaseProtocol, close_connections

from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox

SERVICE_LOGIN = "svc-sync"
SERVICE_PASSWORD = "sandbox-sync"
NO_IMPERSONATION_LOGIN = "svc-noimp"
NO_IMPERSONATION_PASSWORD = "sandbox-noimp"
DEMO_PASSWORD = "demo"
PINNED_VERSION = Version(build=Build(15, 1, 2507, 0), api_version="Exchange2016")

_started: list[SandboxHandle] = []


class _TrustedCAs:
    """The CA files the test adapter trusts (the sandbox CA, once certificates exist)."""

    bundle: str | bool = True


class SandboxCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies TLS against the sandbox CA: what the product does with EXCHANGE_CA_BUNDLE.

    exchangelib never passes ``verify``; the adapter substitutes the bundle in ``cert_verify``,
    which requests calls for every new connection (so hostname checks still apply).
    """

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, _TrustedCAs.bundle, cert)


@pytest.fixture(scope="session")
def sandbox_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-certs")


@pytest.fixture(scope="session")
def _sandbox_ca_bundle(sandbox_cert_dir: Path) -> str:
    from exchange_ext.sandbox.certificates import ensure_certificates

    return str(ensure_certificates("ca", sandbox_cert_dir).ca_file)


@pytest.fixture(autouse=True)
def _exchangelib_trusts_sandbox_ca(_sandbox_ca_bundle: str) -> Iterator[None]:
    # Per test, not per session: exchangelib's adapter class is process-global, and product
    # tests sharing this worker install the product's own (certifi + EXCHANGE_CA_BUNDLE).
    _TrustedCAs.bundle = _sandbox_ca_bundle
    previous = BaseProtocol.HTTP_ADAPTER_CLS
    BaseProtocol.HTTP_ADAPTER_CLS = SandboxCAAdapter
    yield
    BaseProtocol.HTTP_ADAPTER_CLS = previous


@pytest.fixture(autouse=True)
def _no_schema_violations() -> Iterator[None]:
    """Fail a test whose sandbox sent a response that Microsoft's schema rejects."""
    _started.clear()
    yield
    close_connections()  # exchangelib caches one Protocol per endpoint+credentials
    for handle in _started:
        handle.stop()
    failures = [
        (h.url, h.state.validator.report())
        for h in _started
        if h.state.validator.counts["response"]
    ]
    _started.clear()
    assert not failures, f"responses failed schema validation: {failures}"


@pytest.fixture
def start(sandbox_cert_dir: Path) -> Callable[..., SandboxHandle]:
    """Start a sandbox (stopped after the test): ``start(config=None, tls="ca", **kwargs)``."""

    def _start(**kwargs: Any) -> SandboxHandle:
        kwargs.setdefault("validate", "fatal")
        kwargs.setdefault("cert_dir", sandbox_cert_dir)
        handle = start_sandbox(**kwargs)
        _started.append(handle)
        return handle

    return _start


@pytest.fixture
def sandbox(start: Callable[..., SandboxHandle]) -> SandboxHandle:
    """A sandbox with the default config and its real EWS operations (``sandbox.operations``)."""
    return start(config=load_config())


def make_account(
    handle: SandboxHandle,
    address: str,
    *,
    login: str = SERVICE_LOGIN,
    password: str = SERVICE_PASSWORD,
    access_type: str = IMPERSONATION,
    retry_policy: Any = None,
    time_zone: str = "UTC",
) -> Account:
    """An exchangelib Account on ``handle`` configured as the product configures it."""
    config = Configuration(
        service_endpoint=handle.url,
        credentials=Credentials(login, password),
        auth_type=BASIC,
        version=PINNED_VERSION,
        retry_policy=retry_policy or FailFast(),
    )
    return Account(
        address,
        config=config,
        autodiscover=False,
        access_type=access_type,
        default_timezone=EWSTimeZone(time_zone),
    )


@pytest.fixture
def account_factory() -> Callable[..., Account]:
    """``account_factory(handle, "tech1@northwind.example", access_type=DELEGATE, ...)``."""
    return make_account


@pytest.fixture
def service_account(sandbox: SandboxHandle) -> Account:
    """tech1's mailbox through the service account with ApplicationImpersonation."""
    return make_account(sandbox, "tech1@northwind.example")


@pytest.fixture
def own_account(sandbox: SandboxHandle) -> Account:
    """tech1's mailbox through tech1's own login (DELEGATE, no impersonation header)."""
    return make_account(
        sandbox, "tech1@northwind.example", login="tech1", password=DEMO_PASSWORD,
        access_type=DELEGATE,
    )  # fmt: skip
