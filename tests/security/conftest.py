"""Fixtures shared by the security tests."""

from __future__ import annotations

import socket

import pytest

from exchange_ext.backends import addresses


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What the resolver seam answers, per name (a name not listed does not resolve); a test
    may change an answer at any time, as DNS rebinding does."""
    answers: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is unknown to this test")
        return list(answers[host])

    monkeypatch.setattr(addresses, "resolve", resolve)
    return answers
