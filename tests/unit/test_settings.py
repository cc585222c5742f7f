"""Settings come from the environment with embedded defaults, and bad values fail loudly.

Settings are loaded in a fresh interpreter with a controlled environment, so no test mutates
the live settings of the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from psa.environment import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]

# Prints the settings the tests look at, as JSON; run with ``python -c`` in a clean env.
DUMP = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", ""),
    "port": db.get("PORT", ""), "user": db.get("USER", ""), "options": db.get("OPTIONS", {}),
    "q_cluster": settings.Q_CLUSTER, "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS, "email_backend": settings.EMAIL_BACKEND,
    "psa_base_url": settings.PSA_BASE_URL, "secret_key": settings.SECRET_KEY,
}))
"""

# Variables that configure the settings; none may leak in from the shell running the tests.
CONFIG_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "EMAIL_", "PSA_", "Q_", "EXCHANGE_")


def load_settings(var_dir: Path | None, **variables: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a new interpreter with only ``variables`` configuring them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    env["DJANGO_SETTINGS_MODULE"] = "psa.settings"
    if var_dir is not None:
        env["PSA_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-c", DUMP],
        cwd=ROOT,
        env=env | variables,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(var_dir: Path | None, **variables: str) -> dict:
    result = load_settings(var_dir, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_environment_gives_sqlite_under_the_var_directory_and_the_orm_broker(tmp_path):
    loaded = settings_with(tmp_path / "var")
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "var" / "psa.sqlite3")
    assert loaded["options"]["timeout"] == 20
    assert loaded["q_cluster"]["orm"] == "default"
    assert "redis" not in loaded["q_cluster"]
    assert loaded["debug"] is True
    assert loaded["email_backend"] == "django.core.mail.backends.console.EmailBackend"
    assert loaded["psa_base_url"] == "http://127.0.0.1:8000"
    assert (tmp_path / "var").is_dir()


def test_var_directory_defaults_to_var_in_the_checkout():
    assert settings_with(None)["name"] == str(ROOT / "var" / "psa.sqlite3")


def test_database_url_selects_postgresql(tmp_path):
    loaded = settings_with(
        tmp_path / "var", DATABASE_URL="postgres://psa:secret@db.internal:6543/psa_prod"
    )
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["name"], loaded["host"], loaded["port"], loaded["user"]) == (
        "psa_prod",
        "db.internal",
        6543,
        "psa",
    )
    assert "timeout" not in loaded["options"]


def test_redis_url_switches_the_task_queue_to_redis(tmp_path):
    loaded = settings_with(tmp_path / "var", REDIS_URL="redis://cache.internal:6379/2")
    assert loaded["q_cluster"]["redis"] == "redis://cache.internal:6379/2"
    assert "orm" not in loaded["q_cluster"]


def test_production_variables_are_honoured(tmp_path):
    loaded = settings_with(
        tmp_path / "var",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="a-real-secret",
        DJANGO_ALLOWED_HOSTS="psa.example.com, www.psa.example.com",
        PSA_BASE_URL="https://psa.example.com/",
    )
    assert loaded["debug"] is False
    assert loaded["secret_key"] == "a-real-secret"
    assert loaded["allowed_hosts"] == ["psa.example.com", "www.psa.example.com"]
    assert loaded["psa_base_url"] == "https://psa.example.com"


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = load_settings(tmp_path / "var", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be true or false, not 'maybe'"),
        ("EMAIL_PORT", "twenty-five", "EMAIL_PORT must be an integer, not 'twenty-five'"),
        ("Q_WORKERS", "2.5", "Q_WORKERS must be an integer, not '2.5'"),
    ],
)
def test_a_malformed_variable_stops_startup_naming_the_variable(tmp_path, name, value, message):
    result = load_settings(tmp_path / "var", **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


# --- the readers themselves (no settings involved) -------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "YES", " on "])
def test_env_bool_accepts_the_usual_true_spellings(monkeypatch, raw):
    monkeypatch.setenv("PSA_TEST_FLAG", raw)
    assert env_bool("PSA_TEST_FLAG") is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_env_bool_accepts_the_usual_false_spellings(monkeypatch, raw):
    monkeypatch.setenv("PSA_TEST_FLAG", raw)
    assert env_bool("PSA_TEST_FLAG", default=True) is False


def test_env_bool_rejects_anything_else(monkeypatch):
    monkeypatch.setenv("PSA_TEST_FLAG", "sometimes")
    with pytest.raises(ImproperlyConfigured, match="PSA_TEST_FLAG must be true or false"):
        env_bool("PSA_TEST_FLAG")


def test_unset_variables_give_the_defaults(monkeypatch):
    monkeypatch.delenv("PSA_TEST_VALUE", raising=False)
    assert env_str("PSA_TEST_VALUE", "x") == "x"
    assert env_bool("PSA_TEST_VALUE", True) is True
    assert env_int("PSA_TEST_VALUE", 7) == 7
    assert env_list("PSA_TEST_VALUE", "a,b") == ["a", "b"]


def test_env_int_treats_blank_as_unset_and_rejects_words(monkeypatch):
    monkeypatch.setenv("PSA_TEST_VALUE", "  ")
    assert env_int("PSA_TEST_VALUE", 3) == 3
    monkeypatch.setenv("PSA_TEST_VALUE", "three")
    with pytest.raises(ImproperlyConfigured, match="PSA_TEST_VALUE must be an integer"):
        env_int("PSA_TEST_VALUE", 3)


def test_env_list_drops_blanks_and_whitespace(monkeypatch):
    monkeypatch.setenv("PSA_TEST_VALUE", " a, b,,c ,")
    assert env_list("PSA_TEST_VALUE") == ["a", "b", "c"]
