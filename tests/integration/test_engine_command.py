"""``manage.py exchange_sync`` and the sync log on the profile tab, over a MemoryBackend."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from exchange_ext.backends import factory
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun
from tests.builders import make_account, make_appointment, make_contact, make_resource

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(monkeypatch):
    config = ExchangeConfig.load()
    config.server_address = "mail.example.test"
    config.save()
    techs = [make_resource(f"cmd{n}") for n in range(2)]
    for tech in techs:
        MailboxSettings.objects.create(resource=tech, sync_enabled=True, mailbox=tech.email)
        make_appointment(tech, title=f"Visit of {tech.first_name}")
    backend = MemoryBackend([tech.email for tech in techs])
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    return config, techs, backend


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("exchange_sync", *args, stdout=out)
    return out.getvalue()


def test_exchange_sync_all_prints_a_summary_per_resource(setup):
    _, techs, _ = setup
    output = run("--all")
    lines = output.strip().splitlines()
    assert len(lines) == 2
    assert all("ok; PSA —; Exchange 1 created; 0 conflicts, 0 errors" in line for line in lines)
    assert "ok; PSA —; Exchange —" in run("--resource", str(techs[0].pk))


def test_exchange_sync_fails_with_a_clear_message_for_an_unknown_resource(setup):
    with pytest.raises(CommandError, match="Resource 999999 does not exist or is not enabled"):
        run("--resource", "999999")


def test_exchange_sync_refuses_when_the_integration_is_off_or_unconfigured(setup):
    config, _, _ = setup
    config.server_address = ""
    config.save()
    with pytest.raises(CommandError, match="server is not configured"):
        run("--all")
    config.enabled = False
    config.save()
    with pytest.raises(CommandError, match="turned off"):
        run("--all")


def test_exchange_sync_exits_non_zero_when_a_run_fails(setup):
    from exchange_ext.backends.base import Unavailable

    _, _, backend = setup
    backend.fail_next(Unavailable("connection reset"))
    with pytest.raises(CommandError, match="1 of 2 sync runs failed"):
        run("--all")


def test_the_profile_tab_lists_recent_runs_with_their_errors(setup, client):
    _, techs, backend = setup
    backend.reject_if = lambda record: "too large" if "Visit" in record.subject else None
    run("--resource", str(techs[0].pk))
    assert SyncRun.objects.get().outcome == "partial"
    client.force_login(techs[0].user)
    page = client.get("/profile/exchange/").content.decode()
    assert "Some items failed" in page
    assert "too large" in page


def test_exchange_sync_all_also_syncs_the_public_folder_when_it_is_on(setup):
    config, _, _ = setup
    make_contact(make_account(), last_name="Public")
    assert "Public contacts folder" not in run("--all")  # off by default
    config.public_contacts_folder = True
    config.save()
    lines = run("--all").strip().splitlines()
    assert len(lines) == 3
    assert lines[-1] == "Public contacts folder: ok; Exchange 1 created; 0 errors"
    assert run("--public-folder").strip() == "Public contacts folder: ok; Exchange —; 0 errors"
    assert SyncRun.objects.filter(mailbox_settings=None).count() == 2


def test_exchange_sync_public_folder_refuses_when_off_or_with_graph(setup):
    config, _, _ = setup
    with pytest.raises(CommandError, match="public contacts folder is off"):
        run("--public-folder")
    config.public_contacts_folder = True
    config.use_basic_auth, config.use_graph, config.tenant_id = False, True, "t"
    config.save()
    with pytest.raises(CommandError, match="EWS only"):
        run("--public-folder")
    assert len(run("--all").strip().splitlines()) == 2  # the resources only, no error
