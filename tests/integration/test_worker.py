"""A real ``manage.py qcluster`` picks up a queued task and its result is stored.

Each test runs the worker, the migrations and the enqueuing client as separate processes on a
database of its own (a SQLite file in a temporary directory, or a new PostgreSQL database) with
a cluster name of its own, so concurrent runs and the test database of pytest-django never meet.
Every subprocess has a time limit, and the worker's process group is always killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "manage.py")
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
TASK_TIMEOUT = 60  # seconds for a started worker to run the task and store its result

# Settings for the worker: the product's, with a cluster name no other run shares (with Redis,
# the name is the queue's key; another cluster on the same name would take our task).
SETTINGS_MODULE = """
from psa.settings import *  # noqa: F403
Q_CLUSTER = {{**Q_CLUSTER, "name": {name!r}}}  # noqa: F405
"""

# Enqueues the demo task, waits for its result and prints it as JSON with our own pid.
ENQUEUE_AND_WAIT = """
import json, os, sys, time
import django
django.setup()
from django_q.tasks import async_task, fetch
task_id = async_task("psa.demo.tasks.describe_worker", sys.argv[1], save=True)
deadline = time.monotonic() + float(sys.argv[2])
while (task := fetch(task_id)) is None and time.monotonic() < deadline:
    time.sleep(0.25)
print(json.dumps({"client_pid": os.getpid(), "success": task and task.success,
                  "result": task and task.result}))
"""

# The variables that configure the settings; the shell running the tests must not leak any.
CONFIG_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "PSA_", "Q_")


def require(reachable: bool, service: str) -> None:
    """Skip without the service, except in CI, where every service must be there."""
    if reachable:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{service} is unreachable, and CI=true requires it")
    pytest.skip(f"{service} is unreachable")


def postgres_reachable() -> bool:
    try:
        psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping())
    except redis.RedisError:
        return False


def worker_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    name = f"psa-test-{uuid.uuid4().hex[:12]}"
    (tmp_path / "worker_test_settings.py").write_text(SETTINGS_MODULE.format(name=name))
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    return env | {
        "DJANGO_SETTINGS_MODULE": "worker_test_settings",
        # Kept: the shifted-clock runs put their sitecustomize on it (Makefile, test-clock).
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")])
        ),
        "PSA_VAR_DIR": str(tmp_path / "var"),
        "Q_WORKERS": "1",
        **variables,
    }


def run(env: dict[str, str], *args: str, timeout: float) -> str:
    result = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args[:2]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@contextlib.contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``manage.py qcluster`` in its own process group, killed whatever happens."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, MANAGE, "qcluster"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def assert_worker_runs_a_queued_task(env: dict[str, str], tmp_path: Path) -> None:
    run(env, MANAGE, "migrate", "--noinput", timeout=180)
    token = uuid.uuid4().hex
    log = tmp_path / "qcluster.log"
    with running_worker(env, log) as worker:
        output = run(env, "-c", ENQUEUE_AND_WAIT, token, str(TASK_TIMEOUT), timeout=120)
        assert worker.poll() is None, log.read_text()
    outcome = json.loads(output)
    assert outcome["success"] is True, log.read_text()
    assert outcome["result"]["token"] == token
    # Run by the worker, not in the client that queued it.
    assert outcome["result"]["pid"] != outcome["client_pid"]


def test_worker_on_the_orm_broker_runs_a_queued_task(tmp_path):
    env = worker_environment(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}")
    assert_worker_runs_a_queued_task(env, tmp_path)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test only; dropped afterwards."""
    require(postgres_reachable(), f"PostgreSQL at {POSTGRES_URL}")
    name = f"psa_worker_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_worker_on_redis_and_postgresql_runs_a_queued_task(tmp_path, postgres_database):
    require(redis_reachable(), f"Redis at {REDIS_URL}")
    env = worker_environment(tmp_path, DATABASE_URL=postgres_database, REDIS_URL=REDIS_URL)
    assert_worker_runs_a_queued_task(env, tmp_path)


# --- run_demo supervises the worker (and the web server, the sandbox) as children ------------

# A child that ignores SIGTERM and has a helper process of its own, like a stuck qcluster.
STUBBORN_CHILD = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("ready", flush=True)
time.sleep(120)
"""


def running_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (a killed orphan may await reaping)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                running.append(int(stat.parent.name))
    return running


def test_supervisor_reports_a_dead_child_and_kills_the_others_with_their_helpers(tmp_path):
    from psa.demo.supervisor import Child, Supervisor

    supervisor = Supervisor()
    stubborn = Child("stubborn", [sys.executable, "-c", STUBBORN_CHILD], tmp_path / "s.log")
    failing = Child("failing", [sys.executable, "-c", "import time; time.sleep(2); exit(3)"])
    supervisor.start(stubborn)
    try:
        supervisor.start(failing)
        died = supervisor.watch(poll=0.1)
        assert died is failing and died.process.returncode == 3
    finally:
        supervisor.stop_all(timeout=1)
    assert stubborn.process.returncode == -signal.SIGKILL
    assert running_in_group(stubborn.process.pid) == []
    assert stubborn.tail() == "ready"


def test_supervisor_stops_cleanly_on_request(tmp_path):
    from psa.demo.supervisor import Child, Supervisor

    supervisor = Supervisor()
    sleeper = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"])
    supervisor.start(sleeper)
    supervisor.stop_requested = True  # what the SIGINT / SIGTERM handler does
    try:
        assert supervisor.watch(poll=0.1) is None
    finally:
        supervisor.stop_all(timeout=5)
    assert sleeper.process.returncode == -signal.SIGTERM
