"""The demo commands refuse to run in production (``DJANGO_DEBUG=false``; SPEC §8).

They create logins with the published password ``demo``, write the sandbox's known credentials
into the Exchange configuration, or serve a fake Exchange that accepts them.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from exchange_ext.models import ExchangeConfig
from psa.crm.models import Account

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("load_demo", []),
        ("load_demo", ["--refresh-calendar"]),
        ("exchange_demo_setup", []),
        ("exchange_demo_setup", ["--graph"]),
        ("run_demo", []),
        ("exchange_sandbox", ["--port", "0"]),
    ],
)
def test_a_demo_command_refuses_to_run_when_debug_is_off_and_changes_nothing(
    settings, tmp_path, command, args
):
    settings.DEBUG = False
    settings.VAR_DIR = tmp_path
    out = io.StringIO()

    with pytest.raises(CommandError) as refused:
        call_command(command, *args, stdout=out, stderr=out)

    assert str(refused.value).startswith(f"{command} ")
    assert "refuses to run with DJANGO_DEBUG=false" in str(refused.value)
    assert out.getvalue() == ""
    assert not User.objects.exists() and not Account.objects.exists()
    assert not ExchangeConfig.objects.exists()
    assert list(tmp_path.iterdir()) == []


def test_load_demo_names_the_known_password_it_would_create(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="creates demo logins with the known password 'demo'"):
        call_command("load_demo", stdout=io.StringIO())


def test_load_demo_with_django_debug_false_in_the_environment_exits_with_the_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PSA_"))}
    env |= {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 60,
        "EXCHANGE_SECRET_KEYS": Fernet.generate_key().decode(),
        "PSA_VAR_DIR": str(tmp_path),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "load_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "load_demo creates demo logins with the known password 'demo'" in result.stderr
    assert "refuses to run with DJANGO_DEBUG=false" in result.stderr
