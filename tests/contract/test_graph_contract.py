"""The backend contract suite (test_backend_contract.py) once more, for Graph on the sandbox.

Every test of the suite is imported here and runs with ``subject`` bound to
:class:`~exchange_ext.backends.graph.backend.GraphBackend` against the shared sandbox's Graph side
(an app-only token from its Entra endpoint). The user's "Outlook" edits go through the EWS
side of the same store, so each case also checks that items written and tagged over EWS read
the same through Graph.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange_ext.backends.graph.auth import GraphCredentials
from exchange_ext.backends.graph.backend import GraphBackend, GraphSettings

from .conftest import GraphIdsDriver, ews_driver
from .test_backend_contract import *  # noqa: F403 - the suite's tests run here on Graph
from .test_backend_contract import PAGE_SIZE, Subject, sandbox_requests

# The sandbox's Entra tenant and its unscoped app (exchange_ext/sandbox/default_config.json).
TENANT_ID = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
CLIENT_ID = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6"
CLIENT_SECRET = "sandbox-graph-secret"


def graph_backend(base_url: str, *, page_size: int = PAGE_SIZE, **settings: object) -> GraphBackend:
    credentials = GraphCredentials(TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority_url=base_url)
    options: dict[str, object] = {
        "retry_budget_seconds": 5.0, "timeout": (5.0, 20.0), "delta_page_size": page_size,
    }  # fmt: skip
    return GraphBackend(GraphSettings(credentials, base_url=base_url, **options | settings))  # type: ignore[arg-type]


@pytest.fixture(params=["graph"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    with ews_driver(driver_class=GraphIdsDriver) as driver:
        graph_state = driver.handle.state.graph
        yield Subject(
            backend=graph_backend(driver.handle.base_url),
            mailbox=driver.mailbox,
            edit_as_user=driver.edit,
            delete_as_user=driver.remove,
            expire_states=graph_state.deltas.clear,
            meeting_messages=driver.meeting_messages,
            create_series=driver.create_series,
            content_reads=sandbox_requests(driver.handle, "graph:events.get", "graph:contacts.get"),
        )
