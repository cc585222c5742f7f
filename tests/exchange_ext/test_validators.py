"""The General tab's value rules (README, "Configuring the MS Exchange extension"): server
address, ports, notification emails, domain."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from exchange_ext.web.validators import (
    HOST_ONLY_MESSAGE,
    IP_LITERAL_MESSAGE,
    allowed_ports,
    validate_credentials_domain,
    validate_notification_emails,
    validate_server_address,
)


def error_text(callable_, *args) -> str:
    with pytest.raises(ValidationError) as caught:
        callable_(*args)
    return " ".join(caught.value.messages)


@pytest.mark.parametrize(
    "address",
    [
        "192.168.1.10",
        "10.0.0.1:443",
        "::1",
        "2001:db8::1",
        "[::1]",
        "[::1]:443",
        "[2001:db8::1]:2610",
        "fe80::1%eth0",
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "2130706433",
        "2130706433:443",
        "127.0.0.1.",
    ],
)
def test_ip_literals_in_every_spelling_are_rejected_with_the_host_name_message(address):
    assert error_text(validate_server_address, address) == IP_LITERAL_MESSAGE


@pytest.mark.parametrize(
    "address",
    ["https://mail.example.com", "mail.example.com/EWS", "user@mail.example.com",
     "mail.example.com?x=1", "mail .example.com", "mail.example.com#frag"],
)  # fmt: skip
def test_schemes_paths_credentials_and_whitespace_are_rejected(address):
    assert error_text(validate_server_address, address) == HOST_ONLY_MESSAGE


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("mail.example.com", "mail.example.com"),
        ("Mail.Example.COM", "mail.example.com"),
        ("mail.example.com:443", "mail.example.com:443"),
        ("mail.example.com:2610", "mail.example.com:2610"),
        ("  exchange.contoso.test  ", "exchange.contoso.test"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
    ],
)
def test_host_names_with_allowed_ports_are_normalized(address, normalized):
    assert validate_server_address(address) == normalized


@pytest.mark.parametrize(
    "address", ["-bad.example.com", "a" * 64 + ".example.com", ("a" * 60 + ".") * 5 + "com", "a..b"]
)
def test_invalid_dns_names_are_rejected(address):
    assert "valid host name" in error_text(validate_server_address, address)


def test_a_blank_server_address_is_required():
    assert "host name" in error_text(validate_server_address, "  ")


def test_a_port_outside_the_allowed_list_is_rejected_naming_the_allowed_ports():
    message = error_text(validate_server_address, "mail.example.com:8443")
    assert "8443" in message and "443, 2610" in message


def test_exchange_allowed_ports_overrides_the_default_at_call_time(monkeypatch):
    monkeypatch.setenv("EXCHANGE_ALLOWED_PORTS", "8443, 9443")
    assert allowed_ports() == [8443, 9443]
    assert validate_server_address("mail.example.com:8443") == "mail.example.com:8443"
    assert "443" in error_text(validate_server_address, "mail.example.com:443")
    monkeypatch.delenv("EXCHANGE_ALLOWED_PORTS")
    assert allowed_ports() == [443, 2610]


def test_a_malformed_allowed_ports_variable_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("EXCHANGE_ALLOWED_PORTS", "443,https")
    with pytest.raises(ImproperlyConfigured, match="EXCHANGE_ALLOWED_PORTS"):
        allowed_ports()


def test_notification_emails_are_split_on_semicolons_tolerating_spaces_and_a_trailing_one():
    assert validate_notification_emails(" ops@example.com ;boss@example.org; ") == [
        "ops@example.com",
        "boss@example.org",
    ]


def test_blank_notification_emails_mean_nobody():
    assert validate_notification_emails("") == []
    assert validate_notification_emails(" ; ") == []


def test_a_bad_notification_address_is_named_in_the_error():
    message = error_text(validate_notification_emails, "ops@example.com; not-an-address; x@")
    assert "not-an-address" in message and "x@" in message
    assert "ops@example.com" not in message


@pytest.mark.parametrize(
    "value",
    [
        "ops@example.com\r\nBcc: victim@example.net",
        "ops@example.com\nBcc: victim@example.net",
        "ops@example.com\x00",
        "ops@example.com, victim@example.net",
        "Ops <ops@example.com>",
        '"ops,x"@example.com',
    ],
)
def test_header_injection_attempts_in_notification_emails_are_refused(value):
    with pytest.raises(ValidationError):
        validate_notification_emails(value)


@pytest.mark.parametrize(
    ("username", "domain"),
    [("NORTHWIND\\svc-sync", ""), ("svc-sync@northwind.example", ""), ("svc-sync", "NORTHWIND"),
     ("svc-sync@northwind.example", "NORTHWIND"), ("NORTHWIND\\svc", "northwind")],
)  # fmt: skip
def test_a_domain_given_once_is_accepted(username, domain):
    validate_credentials_domain(username, domain)


def test_a_username_without_any_domain_gets_an_error_on_the_domain_field():
    with pytest.raises(ValidationError) as caught:
        validate_credentials_domain("svc-sync", "")
    assert list(caught.value.message_dict) == ["domain"]


def test_a_domain_field_conflicting_with_the_username_is_rejected():
    with pytest.raises(ValidationError) as caught:
        validate_credentials_domain("NORTHWIND\\svc-sync", "CONTOSO")
    assert "CONTOSO" in caught.value.message_dict["domain"][0]
