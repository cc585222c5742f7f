"""The address a server name resolves to is checked before connecting (SPEC §8; README, "Where
the extension connects"): loopback, link-local, unspecified and multicast addresses are refused
unless ``EXCHANGE_ALLOWED_NETWORKS`` lists them; private ranges stay allowed.

No traffic: the resolver seam (:func:`exchange_ext.backends.addresses.resolve`) is replaced.
The same check over real connections to the sandbox: ``test_outbound_addresses_sandbox.py``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from exchange_ext.backends import addresses
from exchange_ext.backends.base import AddressRefused, BackendError
from exchange_ext.backends.tls import TrustedCAAdapter
from psa.environment import env_networks

ROOT = Path(__file__).resolve().parents[2]
HOST = "exchange.example.com"
CONFIG_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "EMAIL_", "PSA_", "Q_", "EXCHANGE_")


@pytest.fixture
def nothing_allowed(settings) -> None:
    settings.EXCHANGE_ALLOWED_NETWORKS = ()


def networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part) for part in text.split(","))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback"),
        ("127.8.9.10", "a loopback"),
        ("::1", "a loopback"),
        ("::ffff:127.0.0.1", "a loopback"),
        ("169.254.169.254", "a link-local"),  # the cloud metadata service
        ("169.254.0.1", "a link-local"),
        ("fe80::1", "a link-local"),
        ("::ffff:169.254.169.254", "a link-local"),
        ("0.0.0.0", "an unspecified"),
        ("0.1.2.3", "an unspecified"),
        ("::", "an unspecified"),
        ("224.0.0.1", "a multicast"),
        ("ff02::1", "a multicast"),
    ],
)
def test_a_name_resolving_off_limits_is_refused_naming_the_address_and_why(
    dns, nothing_allowed, address, reason
):
    dns[HOST] = [address]

    with pytest.raises(AddressRefused) as refused:
        addresses.vetted_addresses(HOST, 443)

    assert refused.value.message == (
        f"The server address {HOST} resolves to {address}, {reason} address; connections there "
        "are refused unless EXCHANGE_ALLOWED_NETWORKS lists it."
    )
    assert refused.value.host == HOST


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "172.16.5.4", "192.168.1.10", "fd12:3456::1", "203.0.113.7"]
)
def test_private_and_public_addresses_stay_allowed(dns, nothing_allowed, address):
    dns[HOST] = [address]

    assert addresses.vetted_addresses(HOST, 443) == [address]


def test_exchange_allowed_networks_lets_the_addresses_it_lists_through(dns, settings):
    settings.EXCHANGE_ALLOWED_NETWORKS = networks("127.0.0.0/8,::1/128,169.254.10.0/24")
    dns[HOST] = ["127.0.0.1", "::1", "::ffff:127.0.0.2", "169.254.10.20"]

    assert addresses.vetted_addresses(HOST, 443) == dns[HOST]

    dns[HOST] = ["169.254.169.254"]  # the metadata service is outside the listed /24
    with pytest.raises(AddressRefused, match=re.escape("169.254.169.254, a link-local address")):
        addresses.vetted_addresses(HOST, 443)


def test_one_refused_answer_refuses_the_name_whatever_the_others(dns, nothing_allowed):
    dns[HOST] = ["10.1.2.3", "169.254.169.254"]

    with pytest.raises(AddressRefused, match=re.escape("resolves to 169.254.169.254")):
        addresses.vetted_addresses(HOST, 443)


def test_a_name_that_does_not_resolve_is_a_resolution_error_not_a_refusal(dns):
    with pytest.raises(socket.gaierror):
        addresses.vetted_addresses("nowhere.example.com", 443)


def test_through_a_proxy_the_target_name_is_checked_before_anything_is_sent(dns, nothing_allowed):
    # The proxy resolves the name itself; this machine's answer is checked first.
    dns[HOST] = ["169.254.169.254"]
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", TrustedCAAdapter())

    with pytest.raises(AddressRefused, match=re.escape(f"{HOST} resolves to 169.254.169.254")):
        session.get(f"https://{HOST}/", proxies={"https": "http://127.0.0.1:9"}, timeout=1)


def test_a_refusal_is_a_permanent_backend_error_with_plain_words_and_a_hint():
    assert BackendError.of_kind("AddressRefused") is AddressRefused
    assert AddressRefused.permanent and not AddressRefused.outage
    assert "EXCHANGE_ALLOWED_NETWORKS" in AddressRefused.hint
    assert "General tab" in AddressRefused.hint
    error = AddressRefused("The server address x resolves to 127.0.0.1, a loopback address.")
    assert error.in_plain_words() == (
        "The Exchange server's address is refused. The server address x resolves to 127.0.0.1, "
        "a loopback address."
    )


# --- EXCHANGE_ALLOWED_NETWORKS ----------------------------------------------------------------


def test_allowed_networks_are_comma_separated_cidrs(monkeypatch):
    monkeypatch.setenv("EXCHANGE_ALLOWED_NETWORKS", " 127.0.0.0/8, ::1/128,,10.9.8.7 ")
    assert env_networks("EXCHANGE_ALLOWED_NETWORKS") == networks("127.0.0.0/8,::1/128,10.9.8.7/32")
    monkeypatch.delenv("EXCHANGE_ALLOWED_NETWORKS")
    assert env_networks("EXCHANGE_ALLOWED_NETWORKS") == ()


@pytest.mark.parametrize("value", ["localhost", "127.0.0.1/8", "10.0.0.0/33", "127.0.0.0/8;::1"])
def test_a_bad_allowed_network_is_a_configuration_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("EXCHANGE_ALLOWED_NETWORKS", value)
    with pytest.raises(ImproperlyConfigured, match="EXCHANGE_ALLOWED_NETWORKS must be") as error:
        env_networks("EXCHANGE_ALLOWED_NETWORKS")
    assert "CIDR" in str(error.value)


def _start_django(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    env |= {"DJANGO_SETTINGS_MODULE": "psa.settings", "PSA_VAR_DIR": str(tmp_path), **variables}
    script = "import django; django.setup(); from django.conf import settings; "
    script += "print(settings.EXCHANGE_ALLOWED_NETWORKS)"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_startup_fails_clearly_on_a_bad_allowed_network_and_allows_nothing_by_default(tmp_path):
    bad = _start_django(tmp_path, EXCHANGE_ALLOWED_NETWORKS="127.0.0.1/8")
    assert bad.returncode != 0
    assert "ImproperlyConfigured: EXCHANGE_ALLOWED_NETWORKS must be" in bad.stderr
    assert "'127.0.0.1/8'" in bad.stderr and "has host bits set" in bad.stderr

    default = _start_django(tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "()"
