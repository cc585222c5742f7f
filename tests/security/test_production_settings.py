"""Production (``DJANGO_DEBUG=false``) passes ``check --deploy --fail-level WARNING`` (SPEC §8).

The checks run in a fresh interpreter with only the variables the README documents, so nothing
leaks in from the shell running the tests and no test mutates the live settings.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from psa.environment import env_header_value, env_meta_key

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "EMAIL_", "PSA_", "Q_", "EXCHANGE_")

# Prints the security settings as JSON; run with ``python -c``.
DUMP = """
import json
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in (
    "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SECURE_REDIRECT_EXEMPT",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "CLIENT_IP_HEADER",
)}))
"""


def production(var_dir: Path, **variables: str) -> dict[str, str]:
    """The README's production environment (SQLite under ``var_dir``), plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    return env | {
        "DJANGO_SETTINGS_MODULE": "psa.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "psa.example.com",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "EXCHANGE_SECRET_KEYS": Fernet.generate_key().decode(),
        "PSA_VAR_DIR": str(var_dir),
        **variables,
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")


def loaded(env: dict[str, str]) -> dict:
    result = run(env, "-c", DUMP)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_documented_production_environment_passes_the_deploy_check(tmp_path):
    result = check_deploy(production(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("variables", "warning"),
    [
        ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"DJANGO_SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "false"}, "security.W005"),
    ],
)
def test_switching_a_protection_off_fails_the_deploy_check(tmp_path, variables, warning):
    result = check_deploy(production(tmp_path, **variables))

    assert result.returncode != 0
    assert warning in result.stderr


def test_production_defaults_to_https_only_with_a_year_of_hsts(tmp_path):
    settings = loaded(production(tmp_path))

    assert settings["DEBUG"] is False
    assert settings["SECURE_SSL_REDIRECT"] is True
    assert settings["SECURE_HSTS_SECONDS"] == 31536000
    assert settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert settings["SECURE_HSTS_PRELOAD"] is False
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["SESSION_COOKIE_SECURE"] is True and settings["CSRF_COOKIE_SECURE"] is True
    assert settings["CLIENT_IP_HEADER"] == ""


def test_development_has_no_redirect_no_hsts_and_no_proxy_header(tmp_path):
    env = production(tmp_path, DJANGO_DEBUG="true")
    del env["DJANGO_SECURE_PROXY_SSL_HEADER"]

    settings = loaded(env)

    assert settings["SECURE_SSL_REDIRECT"] is False
    assert settings["SECURE_HSTS_SECONDS"] == 0
    assert settings["SECURE_PROXY_SSL_HEADER"] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
        ("DJANGO_CLIENT_IP_HEADER", "X-Forwarded-For"),
    ],
)
def test_a_malformed_proxy_variable_stops_startup_naming_it(tmp_path, name, value):
    result = run(production(tmp_path, **{name: value}), "-c", DUMP)

    assert result.returncode != 0
    assert f"{name} must" in result.stderr and "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize(
    "raw",
    [
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_PROTO,",
        ",https",
        "X_FORWARDED_PROTO,https",
        "http_x_forwarded_proto,https",
        "HTTP_X_FORWARDED_PROTO,https,http",
    ],
)
def test_the_proxy_ssl_header_must_be_a_meta_header_and_a_value(monkeypatch, raw):
    monkeypatch.setenv("PSA_TEST_HEADER", raw)

    with pytest.raises(ImproperlyConfigured, match=r"e\.g\. HTTP_X_FORWARDED_PROTO,https"):
        env_header_value("PSA_TEST_HEADER")


def test_the_proxy_ssl_header_is_read_as_a_pair_with_blanks_trimmed(monkeypatch):
    monkeypatch.setenv("PSA_TEST_HEADER", " HTTP_X_FORWARDED_PROTO , https ")
    assert env_header_value("PSA_TEST_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("PSA_TEST_HEADER", "")
    assert env_header_value("PSA_TEST_HEADER") is None


@pytest.mark.parametrize("raw", ["X-Forwarded-For", "http_x_forwarded_for", "HTTP X"])
def test_the_client_ip_header_must_be_named_as_request_meta_names_it(monkeypatch, raw):
    monkeypatch.setenv("PSA_TEST_HEADER", raw)

    with pytest.raises(ImproperlyConfigured, match=r"e\.g\. HTTP_X_FORWARDED_FOR"):
        env_meta_key("PSA_TEST_HEADER")


@pytest.mark.django_db
def test_the_https_redirect_spares_the_health_check(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new client builds its middleware from the settings above

    login = client.get("/accounts/login/")
    health = client.get("/healthz")

    assert login.status_code == 301 and login["Location"].startswith("https://")
    assert health.status_code != 301
