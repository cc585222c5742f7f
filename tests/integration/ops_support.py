"""Shared set-up of the operations tests (test_ops_*): a sandbox, a configuration pointing at
it, resources with appointments, and real worker processes on a database of their own.

The worker processes reuse :mod:`tests.integration.test_worker`'s approach: a settings module
of their own in a temporary directory (own cluster name), every subprocess with a time limit,
the process group always killed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "manage.py")
DOMAIN = "northwind.example"
CONFIG_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "PSA_", "Q_", "EXCHANGE_", "EMAIL_")
SECRET_PASSWORD = "sandbox-sync"  # the sandbox's service account password (a secret to us)


def start_ops_sandbox(cert_dir: Path, *, port: int = 0, store: Any = None) -> Any:
    """An in-process sandbox (default accounts, lenient validation) on 127.0.0.1."""
    from exchange_ext.sandbox.server import load_config, start_sandbox

    return start_sandbox(load_config(), tls="ca", port=port, validate=True, cert_dir=cert_dir,
                         store=store)  # fmt: skip


def sandbox_env(handle: Any) -> dict[str, str]:
    """What a process needs to reach the sandbox: its CA, its port and its loopback address."""
    return {
        "EXCHANGE_CA_BUNDLE": str(handle.ca_file),
        "EXCHANGE_ALLOWED_PORTS": f"443,2610,{handle.port}",
        "EXCHANGE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
    }


def add_mailboxes(handle: Any, count: int, prefix: str = "ops") -> list[str]:
    addresses = [f"{prefix}{i}@{DOMAIN}" for i in range(1, count + 1)]
    for address in addresses:
        if not handle.state.store.has_mailbox(address):
            handle.state.store.add_mailbox(address, address.split("@")[0])
    return addresses


def configure(port: int, *, notification_emails: str = "") -> Any:
    """Point the extension at the sandbox on ``port`` (service account, impersonation)."""
    from exchange_ext.models import ExchangeConfig
    from exchange_ext.secrets import Secret

    config = ExchangeConfig.load()
    config.profile_name = "Ops sandbox"
    config.server_address = f"localhost:{port}"
    config.use_basic_auth = True
    config.use_graph = False
    config.username = "svc-sync"
    config.password = Secret(SECRET_PASSWORD)
    config.domain = "NORTHWIND"
    config.use_for_all_users = True
    config.notification_emails = notification_emails
    config.sync_contacts = False
    config.sync_todos = False
    config.sync_service_calls = False
    config.import_mode = "none"
    config.save()
    return config


def make_enabled_resources(addresses: list[str], appointments: int = 2) -> list[int]:
    """One resource per address with ``appointments`` upcoming appointments; enabled for sync.

    Returns the MailboxSettings ids. Appointment titles carry the address (for checks).
    """
    from exchange_ext.web.enrollment import set_enabled_resources
    from tests import clock
    from tests.builders import make_appointment, make_resource

    start = clock.now().replace(minute=0, second=0) + dt.timedelta(days=1)
    resource_ids = []
    for address in addresses:
        name = address.split("@")[0]
        resource = make_resource(name, email=address)
        for n in range(appointments):
            begin = start + dt.timedelta(hours=2 * n)
            make_appointment(resource, start=begin, title=f"{name} #{n}")
        resource_ids.append(resource.pk)
    enabled = set_enabled_resources(resource_ids, [])
    return sorted(s.pk for s in enabled)


def calendar_items(handle: Any, address: str) -> list[Any]:
    store = handle.state.store
    folder = store.distinguished_folder(address, "calendar")
    return store.items_in(folder.id) if folder else []


def duplicate_tags(handle: Any, addresses: list[str]) -> dict[str, int]:
    """Per mailbox, how many items share an extended property (our PSA tag) with another."""
    found: dict[str, int] = {}
    for address in addresses:
        seen: dict[str, int] = defaultdict(int)
        for item in calendar_items(handle, address):
            for value in item.extended.values():
                seen[value] += 1
        extra = sum(n - 1 for n in seen.values() if n > 1)
        if extra:
            found[address] = extra
    return found


def max_overlap(handle: Any) -> tuple[int, dict[str, int]]:
    """The largest number of requests for one mailbox in flight at the same instant.

    From the sandbox's request log: each request occupies [end - duration, end] on the
    impersonation target's timeline. One run sends its requests one after another, so two
    overlapping requests of one mailbox mean two runs at once. Returns (max, per mailbox).
    """
    per_mailbox: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for entry in handle.state.requests.query()["requests"]:
        target = entry.get("impersonation") or entry.get("mailbox")
        if not target:
            continue
        end = dt.datetime.fromisoformat(entry["time"]).timestamp()
        begin = end - entry["duration_ms"] / 1000
        per_mailbox[target].extend([(begin, 1), (end, -1)])
    worst: dict[str, int] = {}
    for target, events in per_mailbox.items():
        level = peak = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts
            level += step
            peak = max(peak, level)
        worst[target] = peak
    return max(worst.values(), default=0), worst


# --- worker processes -----------------------------------------------------------------------

SETTINGS_MODULE = """
from psa.settings import *  # noqa: F403
Q_CLUSTER = {{**Q_CLUSTER, "name": {name!r}, "poll": 0.2}}  # noqa: F405
"""


def worker_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """An environment for manage.py subprocesses with our own settings module and cluster."""
    name = f"psa-ops-{uuid.uuid4().hex[:12]}"
    (tmp_path / "ops_test_settings.py").write_text(SETTINGS_MODULE.format(name=name))
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    return env | {
        "DJANGO_SETTINGS_MODULE": "ops_test_settings",
        # Kept: the shifted-clock runs put their sitecustomize on it (Makefile, test-clock).
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")])
        ),
        "PSA_VAR_DIR": str(tmp_path / "var"),
        "EXCHANGE_SECRET_KEYS": os.environ["EXCHANGE_SECRET_KEYS"],
        "Q_WORKERS": "2",
        **variables,
    }


def run(env: dict[str, str], *args: str, timeout: float) -> str:
    result = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args[:2]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """``manage.py qcluster`` in a process group of its own, output to ``log``."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, MANAGE, "qcluster"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextlib.contextmanager
def running_workers(env: dict[str, str], logs: list[Path]) -> Iterator[list[subprocess.Popen]]:
    """One ``manage.py qcluster`` per log path, always killed with their groups."""
    processes: list[subprocess.Popen] = []
    try:
        for log in logs:
            processes.append(start_worker(env, log))
        yield processes
    finally:
        for process in processes:
            kill_group(process, gently=True)


def kill_group(process: subprocess.Popen, *, gently: bool = False) -> None:
    """Stop a worker and every process of its group (SIGTERM first when ``gently``)."""
    if gently and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
