"""Fixtures shared by the engine's integration tests."""

from __future__ import annotations

import pytest

from exchange_ext.models import ExchangeConfig


@pytest.fixture
def config() -> ExchangeConfig:
    """The installation's configuration row (a test module may override it)."""
    return ExchangeConfig.load()
