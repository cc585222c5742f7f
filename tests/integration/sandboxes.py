"""The in-process Exchange sandbox as the integration tests run it: real HTTPS with a CA of its
own (certificates in a temporary directory), every answer checked against Microsoft's schema
(fatal validation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox


@contextlib.contextmanager
def running_sandbox(
    tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any
) -> Iterator[SandboxHandle]:
    """A sandbox with the default accounts until the block ends (``options``: more
    ``start_sandbox`` arguments, such as ``streaming``); a module-scoped fixture yields it."""
    cert_dir = tmp_path_factory.mktemp(f"{name}-certs")
    handle = start_sandbox(
        load_config(), tls="ca", port=0, validate="fatal", cert_dir=cert_dir, **options
    )
    try:
        yield handle
    finally:
        handle.stop()
