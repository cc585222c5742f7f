"""Whole sync runs (engine + ORM) over GraphBackend on the sandbox, and a mailbox moving from
EWS to Graph: the Graph-specific rows of issue 7's "Done means".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange_ext import engine
from exchange_ext.backends.ews.backend import EwsBackend, EwsSettings, SessionCredentials
from exchange_ext.backends.ews.endpoint import pinned_version
from exchange_ext.backends.graph import auth as graph_auth
from exchange_ext.backends.graph.auth import GraphCredentials
from exchange_ext.backends.graph.backend import GraphBackend, GraphSettings
from exchange_ext.models import ExchangeConfig, ItemLink, MailboxSettings, SyncRun
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from tests import clock
from tests.builders import make_appointment, make_resource
from tests.clock import day

pytestmark = pytest.mark.django_db

TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
APP, SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
TECH1 = "tech1@northwind.example"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    cert_dir: Path = tmp_path_factory.mktemp("graph-sync-certs")
    handle = start_sandbox(config=load_config(), tls="ca", cert_dir=cert_dir)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(sandbox.ca_file))
    sandbox.state.reset()
    graph_auth.forget_token_sources()


@pytest.fixture
def tech() -> MailboxSettings:
    ExchangeConfig.load()
    resource = make_resource("tech", email=TECH1)
    return MailboxSettings.objects.create(resource=resource, sync_enabled=True, mailbox=TECH1)


def graph(sandbox: SandboxHandle) -> GraphBackend:
    credentials = GraphCredentials(TENANT, APP, SECRET, authority_url=sandbox.base_url)
    return GraphBackend(GraphSettings(credentials, base_url=sandbox.base_url, timeout=(5.0, 20.0)))


def ews(sandbox: SandboxHandle) -> EwsBackend:
    return EwsBackend(EwsSettings(
        endpoint=sandbox.url, auth_type="basic", version=pinned_version("2016"),
        make_credentials=lambda: SessionCredentials("svc-sync", "sandbox-sync"),
        retry_budget_seconds=5.0,
    ))  # fmt: skip


def sync(mailbox: MailboxSettings, backend: Any, now: dt.datetime | None = None) -> SyncRun:
    run = engine.run_sync(mailbox.pk, backend=backend, now=now or clock.now())
    assert run.outcome == SyncRun.Outcome.OK, run.error
    return run


def events(sandbox: SandboxHandle) -> list[str]:
    """Subjects of every calendar item in tech1's mailbox, as the server holds them."""
    store = sandbox.state.store
    folder = store.distinguished_folder(TECH1, "calendar")
    return sorted(item.elements.get("Subject", "") for item in store.items_in(folder.id))


def operations(sandbox: SandboxHandle) -> list[str]:
    return [entry["operation"] for entry in sandbox.state.requests.query()["requests"]]


def test_psa_appointments_are_exported_once_and_a_quiet_cycle_is_one_delta_per_folder(
    sandbox, tech
):
    for n in range(3):
        make_appointment(tech.resource, day(1 + n, "09:00"), title=f"Visit {n}")
    first = sync(tech, graph(sandbox))
    assert first.counts == {"appointment": {"exchange": {"created": 3}}}
    # The next cycle reads our own creates back once (echoes: no writes) ...
    assert sync(tech, graph(sandbox)).counts == {}
    sandbox.state.requests.clear()
    # ... and from then on a quiet cycle is one delta request per folder.
    assert sync(tech, graph(sandbox)).counts == {}
    quiet = [op for op in operations(sandbox) if op not in ("graph:token", "graph:discovery")]
    assert sorted(quiet) == ["graph:calendarView.delta", "graph:contacts.delta"]
    assert len(events(sandbox)) == 3


def test_a_mailbox_moved_from_ews_to_graph_adopts_everything_and_creates_nothing(sandbox, tech):
    for n in range(4):
        make_appointment(tech.resource, day(1 + n, "09:00"), title=f"Visit {n}")
    assert sync(tech, ews(sandbox)).counts == {"appointment": {"exchange": {"created": 4}}}
    ews_ids = sorted(ItemLink.objects.values_list("exchange_id", flat=True))
    moved = sync(tech, graph(sandbox))
    assert "created" not in str(moved.counts)
    assert len(events(sandbox)) == 4
    # The links follow the items by their tags: Graph's ids are not the EWS ids.
    graph_ids = sorted(ItemLink.objects.values_list("exchange_id", flat=True))
    assert len(graph_ids) == 4 and set(graph_ids).isdisjoint(ews_ids)
    assert sync(tech, graph(sandbox)).counts == {}


def test_an_appointment_that_ages_out_of_the_window_is_forgotten_not_deleted(sandbox, tech):
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Soon past")
    sync(tech, graph(sandbox))
    assert ItemLink.objects.count() == 1
    later = clock.now() + dt.timedelta(
        days=30
    )  # past_days (7) behind the item, and a new delta range
    run = sync(tech, graph(sandbox), now=later)
    assert "deleted" not in str(run.counts)
    assert ItemLink.objects.count() == 0
    assert events(sandbox) and appointment.__class__.objects.filter(pk=appointment.pk).exists()


def test_a_410_on_the_delta_token_resyncs_without_duplicates(sandbox, tech):
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    sync(tech, graph(sandbox))
    sandbox.state.graph.deltas.clear()  # the server forgot every delta token
    run = sync(tech, graph(sandbox))
    assert "created" not in str(run.counts)
    assert len(events(sandbox)) == 1
