"""The sync rules (docs/sync-rules.md) end to end: PSA actions, "Outlook" edits through the sandbox
backdoor, ``run_sync`` with the backend ``backend_for`` builds from the configuration, over
real HTTPS to the in-process sandbox — once per backend (``backend_kind``: EWS, Graph).

One sandbox per module (started on first use), reset between tests; every response must pass
Microsoft's schema (fatal validation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from exchange_ext.models import ExchangeConfig
from exchange_ext.sandbox.server import SandboxHandle
from tests.integration.sandboxes import running_sandbox
from tests.integration.sync_rules.rules import Harness


@pytest.fixture(params=["ews", "graph"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(tmp_path_factory, "sync-rules") as handle:
        yield handle


@pytest.fixture
def rules(
    sandbox: SandboxHandle, backend_kind: str, monkeypatch: pytest.MonkeyPatch, db: Any
) -> Iterator[Harness]:
    """The product configured for ``backend_kind`` against a freshly reset sandbox."""
    from exchangelib.protocol import close_connections

    from exchange_ext.backends.graph import auth as graph_auth

    sandbox.state.reset()
    graph_auth.forget_token_sources()
    for name, value in Harness.environment(sandbox).items():
        monkeypatch.setenv(name, value)
    harness = Harness(sandbox, backend_kind, ExchangeConfig.load())
    harness.configure(backend_kind)
    yield harness
    close_connections()
    graph_auth.forget_token_sources()
    failures = sandbox.state.validator.counts["response"]
    sandbox.state.validator.counts["response"] = 0
    assert not failures, sandbox.state.validator.report()
