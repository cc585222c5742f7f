"""The CA trust of the Exchange client, and the Django admin that never shows a secret."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest
from django.core.exceptions import ImproperlyConfigured
from exchangelib.protocol import BaseProtocol

from exchange_ext.backends.ews.tls import install_exchangelib_trust
from exchange_ext.backends.tls import TrustedCAAdapter, ca_bundle_path
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sandbox.certificates import ensure_certificates
from tests.builders import make_resource

PLAINTEXT = "admin-must-not-see-this"


@pytest.fixture
def private_ca(tmp_path: Path) -> Path:
    return ensure_certificates("ca", tmp_path).ca_file


def test_without_a_private_ca_only_certifi_is_trusted(monkeypatch):
    monkeypatch.delenv("EXCHANGE_CA_BUNDLE", raising=False)
    assert ca_bundle_path() == certifi.where()


def test_a_private_ca_is_added_to_certifi_in_one_bundle_named_by_its_content(
    monkeypatch, private_ca, settings, tmp_path
):
    settings.VAR_DIR = tmp_path / "var"
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(private_ca))

    bundle = Path(ca_bundle_path())

    content = bundle.read_bytes()
    assert content.startswith(Path(certifi.where()).read_bytes().rstrip(b"\n"))
    assert content.endswith(private_ca.read_bytes())
    assert bundle.parent == tmp_path / "var" / "exchange_ca"
    assert ca_bundle_path() == str(bundle)


@pytest.mark.parametrize("problem", ["missing", "not_pem"])
def test_a_broken_private_ca_file_is_a_configuration_error_naming_the_variable(
    monkeypatch, tmp_path, problem
):
    path = tmp_path / "ca.pem"
    if problem == "not_pem":
        path.write_text("hello")
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(path))

    with pytest.raises(ImproperlyConfigured, match="EXCHANGE_CA_BUNDLE"):
        ca_bundle_path()


def test_installing_the_trust_is_idempotent(monkeypatch):
    monkeypatch.delenv("EXCHANGE_CA_BUNDLE", raising=False)
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", BaseProtocol.HTTP_ADAPTER_CLS)

    install_exchangelib_trust()
    install_exchangelib_trust()

    assert BaseProtocol.HTTP_ADAPTER_CLS is TrustedCAAdapter


@pytest.fixture
def config_with_secrets() -> ExchangeConfig:
    config = ExchangeConfig.load()
    config.password = config.client_secret = config.client_certificate = PLAINTEXT
    config.save()
    return config


@pytest.mark.django_db
def test_the_admin_change_pages_never_show_a_secret(admin_client, config_with_secrets):
    settings = MailboxSettings.objects.create(resource=make_resource(), password=PLAINTEXT)

    pages = [
        admin_client.get(f"/admin/exchange_ext/exchangeconfig/{config_with_secrets.pk}/change/"),
        admin_client.get(f"/admin/exchange_ext/mailboxsettings/{settings.pk}/change/"),
        admin_client.get("/admin/exchange_ext/mailboxsettings/"),
    ]

    for page in pages:
        assert page.status_code == 200
        assert PLAINTEXT not in page.content.decode()
        assert 'name="password"' not in page.content.decode()


@pytest.mark.django_db
def test_the_configuration_is_a_singleton_in_the_admin(admin_client, config_with_secrets):
    assert admin_client.get("/admin/exchange_ext/exchangeconfig/add/").status_code == 403
    delete = f"/admin/exchange_ext/exchangeconfig/{config_with_secrets.pk}/delete/"
    assert admin_client.get(delete).status_code == 403
