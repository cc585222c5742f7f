"""The detailed contract cases (test_backend_contract_details.py) once more, for Graph.

Same pattern as test_graph_contract.py: the module's tests are imported and ``driver`` is
bound to the EWS driver of the shared sandbox with its backend swapped for GraphBackend, so
the "Outlook" side (puts, edits, series, occurrence edits) goes through EWS on the same store
and the backend under test reads and writes through Graph (page size 100, as in production).
Graph ids are not EWS ids: the driver maps between them (``GraphIdsDriver``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import GraphIdsDriver, ews_driver
from .test_backend_contract_details import *  # noqa: F403 - the cases run here on Graph
from .test_graph_contract import graph_backend


@pytest.fixture(params=["graph"])
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    with ews_driver(driver_class=GraphIdsDriver) as ews:
        ews.backend = graph_backend(ews.handle.base_url, page_size=100)
        yield ews
