"""``manage.py exchange_listen`` as the process the supervisor runs: it starts, reports its
heartbeat, and stops cleanly on SIGTERM (what it does while running is tested in
``test_push_ews.py``). ``make run`` starts it beside the worker."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_worker import MANAGE, ROOT, run, worker_environment

START_TIMEOUT = 60.0


def heartbeat(database: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as connection:
        return list(connection.execute("SELECT name, wanted FROM exchange_ext_listenerheartbeat"))


def test_the_listener_process_beats_and_stops_on_sigterm(tmp_path: Path) -> None:
    database = tmp_path / "listen.sqlite3"
    env = worker_environment(tmp_path, DATABASE_URL=f"sqlite:///{database}")
    run(env, MANAGE, "migrate", "--noinput", timeout=180)
    log = (tmp_path / "listen.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, MANAGE, "exchange_listen", "--reconcile-seconds", "0.2"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not heartbeat(database) and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "listen.log").read_text()
            time.sleep(0.2)
        assert heartbeat(database) == [("ews", 0)]  # the integration is off: nothing to hold

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()
    output = (tmp_path / "listen.log").read_text()
    assert "exchange_listen (ews) running" in output and "exchange_listen stopped" in output


def test_the_demo_runs_the_listener_and_lets_the_sandbox_push_to_its_http_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from psa.demo.management.commands.run_demo import Command

    # children() trusts the demo's sandbox through os.environ: keep that out of other tests.
    for name in ("EXCHANGE_CA_BUNDLE", "EXCHANGE_ALLOWED_PORTS", "EXCHANGE_ALLOWED_NETWORKS",
                 "GRAPH_AUTHORITY_URL", "GRAPH_BASE_URL"):  # fmt: skip
        monkeypatch.setenv(name, "")  # recorded, so undone (absent again) after the test
        monkeypatch.delenv(name)
    children = {child.name: child.argv for child in Command().children(8000)}

    assert children["push listener"][-1] == "exchange_listen"
    if "Exchange sandbox" in children:
        assert "--allow-http-notifications" in children["Exchange sandbox"]
