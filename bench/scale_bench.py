"""Scale benchmark: one steady-state cycle of N resources with 1 and 2 ``qcluster`` processes.

Issue 6, "Done means": 1,000 enabled resources with 50 items each, sandbox latency 50 ms — how
long one steady-state cycle of all resources takes with 1 and with 2 worker processes (target:
well inside the 10-minute interval, near-linear in workers while I/O-bound). Issue 14 [scale]:
with 2 ``qcluster`` processes × 2 workers that cycle takes at most 45 s, and a quiet run costs
the workers at most 40 ms of CPU; a second size preset, 100 resources × 2,000 items
(``--preset 100x2000``), shows what the mailbox's size costs. See ``docs/performance.md``,
section "Scale".

How (everything real except the Exchange server, which is the sandbox):

- a fresh, uniquely named PostgreSQL database (dropped at the end) and the Redis broker with a
  unique django-q cluster name — the scale-out deployment of the README;
- the sandbox in a **child process** of its own (its own GIL; schema validation off, as in
  ``bench/sync_bench.py``), reached over HTTPS through ``EXCHANGE_CA_BUNDLE`` /
  ``EXCHANGE_ALLOWED_PORTS``; a ``latency`` fault on every request for the measured cycles;
- PSA rows bulk-inserted (set-up, not measured); the every-minute schedule paused: this script
  is the dispatcher and queues one ``sync_mailbox`` task per resource
  (``dispatcher.enqueue_syncs``, the dispatcher's own queuing path);
- set-up cycles, not measured (no latency, all the worker processes): the initial export and
  the first cycle after it (which reads the exported items back once), so the measured cycles
  are steady state — nothing changed on either side;
- per measured cycle: start N ``manage.py qcluster`` processes (``--q-workers`` each), wait
  until they run, queue every resource, and take the time from the first task queued to the
  last ``SyncRun`` finished; requests from the sandbox's per-operation counters; CPU seconds
  of the worker process trees and of the sandbox; then stop the clusters (SIGTERM, then
  SIGKILL of the process group).

    .venv/bin/python bench/scale_bench.py [--preset 1000x50|100x2000] [--resources 1000]
        [--items 50] [--latency-ms 50] [--workers 1,2] [--q-workers 2] [--json PATH]
        [--timeout 720]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from report import finish  # bench/report.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
MANAGE = str(ROOT / "manage.py")
DOMAIN = "northwind.example"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
#: Environment variables of ours that must not leak from the caller into the children.
CONFIG_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "PSA_", "Q_", "EXCHANGE_", "EMAIL_")
#: Appointments per day in the generated calendars (30-minute slots from 08:00 UTC).
PER_DAY = 16
#: Size presets: (resources, items each). ``--resources``/``--items`` override either.
PRESETS = {"1000x50": (1000, 50), "100x2000": (100, 2000)}
#: Issue 14's targets: the 1,000 × 50 cycle at 50 ms latency with 2 qcluster × 2 workers, and
#: the workers' CPU per quiet run (any size).
CYCLE_TARGET_S = 45.0
CYCLE_TARGET_AT = {"resources": 1000, "items": 50, "latency_ms": 50, "clusters": 2,
                   "q_workers": 2}  # fmt: skip
CPU_PER_RUN_TARGET_MS = 40.0
#: seconds of idle clusters sampled before each cycle (their CPU per second).
IDLE_SAMPLE_S = 5.0
SETTINGS_MODULE = """
from psa.settings import *  # noqa: F403
Q_CLUSTER = {{**Q_CLUSTER, "name": {name!r}, "poll": 0.2}}  # noqa: F405
"""


# --- environment ------------------------------------------------------------------------------


@dataclass
class Environment:
    """The throw-away database, settings module and variables shared by every process."""

    workdir: Path
    database: str
    cluster: str
    redis_url: str
    variables: dict[str, str] = field(default_factory=dict)

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``manage.py`` child: ours, not the caller's configuration."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
        return base | self.variables | extra


def make_environment(args: argparse.Namespace, workdir: Path) -> Environment:
    """A unique database name and cluster name; a settings module naming the cluster."""
    from cryptography.fernet import Fernet

    tag = uuid.uuid4().hex[:10]
    cluster = f"psa-scale-bench-{tag}"
    (workdir / "scale_bench_settings.py").write_text(SETTINGS_MODULE.format(name=cluster))
    database = f"psa_scale_bench_{tag}"
    env = Environment(workdir, database, cluster, args.redis)
    env.variables = {
        "DJANGO_SETTINGS_MODULE": "scale_bench_settings",
        "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
        "PSA_VAR_DIR": str(workdir / "var"),
        "DATABASE_URL": f"{args.postgres}/{database}",
        "REDIS_URL": args.redis,
        # DEBUG off: no per-query log growing in memory in long-lived workers.
        "DJANGO_DEBUG": "false",
        # Persistent database connections, as the README's scale-out deployment sets them: a
        # worker that opened a PostgreSQL connection per task spent more CPU on it than on
        # a quiet sync run (docs/performance.md, "Scale").
        "DATABASE_CONN_MAX_AGE": "300",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "EXCHANGE_SECRET_KEYS": Fernet.generate_key().decode(),
        "EXCHANGE_RETRY_BUDGET_SECONDS": "30",
        # The sandbox is on loopback, which the product refuses unless listed.
        "EXCHANGE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
    }
    return env


def create_database(args: argparse.Namespace, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True, connect_timeout=5) as c:
        c.execute(f'CREATE DATABASE "{name}"')


def drop_database(args: argparse.Namespace, name: str) -> None:
    """Drop the benchmark's database (closing our connections first; FORCE ends others)."""
    import psycopg

    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True, connect_timeout=5) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def forget_broker_keys(redis_url: str, cluster: str) -> None:
    """Delete the Redis keys of our (unique) cluster name, if any are left."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    for key in client.scan_iter(match=f"django_q:{cluster}:*", count=1000):
        client.delete(key)


def setup_django(env: Environment) -> None:
    """This process: the same settings module, database and broker as the workers."""
    sys.path[:0] = [str(env.workdir), str(ROOT)]
    os.environ.update(env.variables)
    import logging

    import django

    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # no line per task queued


# --- the sandbox, in a child process -------------------------------------------------------


class SandboxProcess:
    """The sandbox in a child process: started, driven through its control API, stopped."""

    def __init__(self, env: Environment, timeout: float = 60.0) -> None:
        command = [sys.executable, __file__, "--sandbox-child", "--workdir", str(env.workdir)]
        with (env.workdir / "sandbox.log").open("wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                command, env=env.child_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                text=True, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("{"):
            line = self.process.stdout.readline() if self.process.stdout else ""
            if self.process.poll() is not None:
                raise RuntimeError((env.workdir / "sandbox.log").read_text()[-3000:])
        info = json.loads(line)
        self.port: int = info["port"]
        self.ca_file: str = info["ca_file"]
        self.token: str = info["token"]  # the control API's X-Sandbox-Token
        self.control = f"https://localhost:{self.port}/_sandbox"
        self.context = ssl.create_default_context(cafile=self.ca_file)

    def call(self, method: str, path: str, data: Any = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(
            self.control + path, data=body, method=method,
            headers={"Content-Type": "application/json", "X-Sandbox-Token": self.token},
        )  # fmt: skip
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def counters(self) -> dict[str, int]:
        """Requests per operation since the last reset (counters, not the capped log)."""
        return self.call("GET", "/requests?operation=-none-")["counters"]

    def cpu_seconds(self) -> float:
        return _tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_group(self.process)


def sandbox_child(workdir: Path) -> int:
    """In the child: start the sandbox (validation off), print its port, CA and token, wait.

    The token goes to the parent over the stdout pipe only (no file, no command line)."""
    import django

    django.setup()
    from exchange_ext.sandbox.server import load_config, start_sandbox

    handle = start_sandbox(
        load_config(), tls="ca", port=0, validate=False, cert_dir=workdir / "certs"
    )
    stop = {"now": False}

    def stopping(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, stopping)
    info = {"port": handle.port, "ca_file": str(handle.ca_file), "token": handle.control_token}
    print(json.dumps(info), flush=True)
    try:
        deadline = time.monotonic() + 3600
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        handle.stop()
    return 0


# --- workers --------------------------------------------------------------------------------


def start_cluster(env: Environment, q_workers: int, log: Path) -> subprocess.Popen:
    """``manage.py qcluster`` in a process group of its own."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, MANAGE, "qcluster"], env=env.child_env(Q_WORKERS=str(q_workers)),
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_running(logs: list[Path], processes: list[subprocess.Popen], timeout: float) -> None:
    """Until every cluster logged that it runs (django-q: "Q Cluster ... running.")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"qcluster exited:\n{log.read_text()[-3000:]}")
        if all("running" in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the clusters did not start within {timeout:.0f} s")


def stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process group, then SIGKILL after ``grace`` seconds; always reaped."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


@contextlib.contextmanager
def running_clusters(
    env: Environment, count: int, q_workers: int, name: str
) -> Iterator[list[subprocess.Popen]]:
    """``count`` clusters, running; always stopped (and their groups killed) afterwards."""
    logs = [env.workdir / f"qcluster-{name}-{n}.log" for n in range(count)]
    processes: list[subprocess.Popen] = []
    try:
        for log in logs:
            processes.append(start_cluster(env, q_workers, log))
        wait_running(logs, processes, timeout=90)
        yield processes
    finally:
        for process in processes:
            stop_group(process)


def _tree_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and its live descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            fields = stats[current]
            # utime, stime, cutime, cstime (fields 14-17; the list starts at field 3)
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
        todo.extend(children.get(current, []))
    return total


# --- PSA data and configuration (set-up, not measured) ---------------------------------------


def configure(port: int) -> int:
    """Point the extension at the sandbox (EWS, svc-sync impersonating); the interval, minutes.

    Appointments, service calls and to-dos on (the defaults), contacts off, no import: one
    synced folder per mailbox, the calendar (as ``bench/sync_bench.py``).
    """
    from exchange_ext.models import ExchangeConfig
    from exchange_ext.secrets import Secret

    config = ExchangeConfig.load()
    config.profile_name = "Scale benchmark sandbox"
    config.server_address = f"localhost:{port}"
    config.domain = "NORTHWIND"
    config.use_for_all_users = True
    config.sync_contacts = False
    config.import_mode = "none"
    config.use_basic_auth, config.use_graph = True, False
    config.username, config.password = "svc-sync", Secret("sandbox-sync")
    config.sync_interval_minutes = 10  # the shortest interval allowed: the hardest target
    config.save()
    return config.sync_interval_minutes


def make_resources(count: int, items: int) -> tuple[list[int], list[str]]:
    """``count`` resources with ``items`` upcoming appointments each, enabled for sync.

    Users and appointments are bulk-inserted; resources go through ``do_create_resource`` (the
    product's path). Returns the MailboxSettings ids and the mailbox addresses.
    """
    from django.contrib.auth.models import User

    from exchange_ext.web.enrollment import set_enabled_resources
    from psa.audit.origin import Origin
    from psa.resources.actions import do_create_resource
    from psa.scheduling.models import Appointment

    names = [f"scale{n:05d}" for n in range(1, count + 1)]
    User.objects.bulk_create([User(username=name, password="!") for name in names], 1000)
    users = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    origin = Origin.by_system("scale-bench")
    resources = [
        do_create_resource(
            origin, user_id=users[name], first_name="Bench", last_name=name,
            email=f"{name}@{DOMAIN}", time_zone="Europe/Berlin",
        )
        for name in names
    ]  # fmt: skip
    first = dt.datetime.now(dt.UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    first += dt.timedelta(days=1)
    rows = []
    for resource in resources:
        for n in range(items):
            start = first + dt.timedelta(days=n // PER_DAY, minutes=30 * (n % PER_DAY))
            rows.append(
                Appointment(
                    resource=resource, title=f"Site visit {n}", start=start,
                    end=start + dt.timedelta(minutes=30), location=f"Room {n % 40}",
                    description=f"Check the backup job and the firewall logs ({n}).",
                )
            )  # fmt: skip
        if len(rows) >= 5000:
            Appointment.objects.bulk_create(rows, batch_size=1000)
            rows = []
    Appointment.objects.bulk_create(rows, batch_size=1000)
    enabled = set_enabled_resources([r.pk for r in resources], [])
    return sorted(s.pk for s in enabled), [f"{name}@{DOMAIN}" for name in names]


def pause_schedule() -> None:
    """This script is the dispatcher: the every-minute schedule must not fire meanwhile."""
    from django.utils import timezone
    from django_q.models import Schedule

    Schedule.objects.update(next_run=timezone.now() + dt.timedelta(days=1))


# --- one cycle --------------------------------------------------------------------------------


@dataclass
class Cycle:
    """One cycle of every resource."""

    name: str
    measured: bool
    clusters: int
    q_workers: int
    latency_ms: int
    resources: int
    cycle_s: float = 0.0
    queue_s: float = 0.0
    runs: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    run_s_mean: float = 0.0
    run_s_max: float = 0.0
    requests: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    worker_cpu_s: float = 0.0
    # The clusters' CPU per second while idle (their broker polling, monitor and guard loops),
    # sampled before the cycle: it grows with the cycle's length, not with its runs.
    idle_cpu_s_per_s: float = 0.0
    sandbox_cpu_s: float = 0.0
    startup_s: float = 0.0


def run_cycle(
    env: Environment, sandbox: SandboxProcess, ids: list[int], cycle: Cycle, deadline: float
) -> Cycle:
    """Start the clusters, queue every resource, wait for every run, stop the clusters."""
    from django.db.models import Avg, F, Max
    from django.utils import timezone

    from exchange_ext.jobs import dispatcher
    from exchange_ext.models import SyncRun

    sandbox.call("DELETE", "/faults")
    if cycle.latency_ms:
        sandbox.call("POST", "/faults", {"kind": "latency", "latency_ms": cycle.latency_ms,
                                         "count": None})  # fmt: skip
    pause_schedule()
    print(f"== {cycle.name}: {cycle.clusters} qcluster x {cycle.q_workers} workers, "
          f"{cycle.latency_ms} ms latency", file=sys.stderr, flush=True)  # fmt: skip
    booting = time.perf_counter()
    with running_clusters(env, cycle.clusters, cycle.q_workers, cycle.name.replace(" ", "-")) as ps:
        cycle.startup_s = round(time.perf_counter() - booting, 2)
        sandbox.call("DELETE", "/requests")
        idle_from, idle_started = sum(_tree_cpu_seconds(p.pid) for p in ps), time.perf_counter()
        time.sleep(IDLE_SAMPLE_S)
        idle_cpu = sum(_tree_cpu_seconds(p.pid) for p in ps) - idle_from
        cycle.idle_cpu_s_per_s = round(idle_cpu / (time.perf_counter() - idle_started), 4)
        cpu_before = sum(_tree_cpu_seconds(p.pid) for p in ps)
        sandbox_before = sandbox.cpu_seconds()
        t0 = timezone.now()
        started = time.perf_counter()
        queued = dispatcher.enqueue_syncs(ids, SyncRun.Trigger.SCHEDULED)
        cycle.queue_s = round(time.perf_counter() - started, 2)
        assert len(queued) == len(ids), f"queued {len(queued)} of {len(ids)}"
        runs = SyncRun.objects.filter(mailbox_settings_id__in=ids, started_at__gte=t0)
        finished = runs.exclude(outcome=SyncRun.Outcome.RUNNING)
        last_report = 0.0
        while (done := finished.count()) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cycle.name}: {done} of {len(ids)} runs after the deadline")
            if time.perf_counter() - last_report > 15:
                last_report = time.perf_counter()
                print(f"   {done}/{len(ids)} runs, {last_report - started:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
            time.sleep(0.25)
        polled = time.perf_counter() - started
        cpu_after = sum(_tree_cpu_seconds(p.pid) for p in ps)
        cycle.sandbox_cpu_s = round(sandbox.cpu_seconds() - sandbox_before, 1)
        cycle.worker_cpu_s = round(cpu_after - cpu_before, 2)
        counters = sandbox.counters()
    stats = finished.aggregate(
        last=Max("finished_at"),
        mean=Avg(F("finished_at") - F("started_at")),
        longest=Max(F("finished_at") - F("started_at")),
    )
    # The cycle ends when the last run finished (database clock, same host), not at our poll.
    cycle.cycle_s = round(min((stats["last"] - t0).total_seconds(), polled), 2)
    cycle.run_s_mean = round(stats["mean"].total_seconds(), 3)
    cycle.run_s_max = round(stats["longest"].total_seconds(), 3)
    cycle.runs = finished.count()
    cycle.outcomes = dict(Counter(finished.values_list("outcome", flat=True)))
    cycle.by_operation = dict(sorted(counters.items()))
    cycle.requests = sum(counters.values())
    print(f"   {cycle.cycle_s:.1f} s, {cycle.requests} requests, outcomes {cycle.outcomes}",
          file=sys.stderr, flush=True)  # fmt: skip
    return cycle


# --- report -----------------------------------------------------------------------------------


def summarise(cycles: list[Cycle], interval_minutes: int, items: int) -> dict[str, Any]:
    """Cycle time per worker-process count, speed-up, requests per cycle, the interval; the
    worker CPU per run; ``targets``: issue 14's, each ``{figure, result, target, met}``."""
    measured = {c.clusters: c for c in cycles if c.measured}
    summary: dict[str, Any] = {"interval_s": interval_minutes * 60}
    targets: list[dict[str, Any]] = []
    base = measured.get(min(measured)) if measured else None
    for clusters, c in sorted(measured.items()):
        entry = {
            "qcluster_processes": clusters,
            "q_workers_each": c.q_workers,
            "cycle_s": c.cycle_s,
            "resources_per_s": round(c.resources / c.cycle_s, 1) if c.cycle_s else None,
            "requests": c.requests,
            "requests_per_resource": round(c.requests / c.resources, 2),
            "share_of_interval": round(c.cycle_s / (interval_minutes * 60), 3),
            "within_interval": c.cycle_s < interval_minutes * 60,
            "all_ok": set(c.outcomes) <= {"ok"} and c.runs == c.resources,
            "worker_cpu_ms_per_run": round(1000 * c.worker_cpu_s / max(c.runs, 1), 1),
            "idle_cpu_ms_per_s": round(1000 * c.idle_cpu_s_per_s, 1),
            "worker_cpu_ms_per_run_net_of_idle": round(
                1000 * max(c.worker_cpu_s - c.idle_cpu_s_per_s * c.cycle_s, 0.0) / max(c.runs, 1),
                1,
            ),
        }
        where = f"{c.resources} x {items}, {clusters} qcluster x {c.q_workers}, {c.latency_ms} ms"
        # The run's own CPU: what the clusters spent during the cycle less what they spend idle
        # for as long (docs/performance.md, "Scale"); the gross figure is printed beside it.
        net = entry["worker_cpu_ms_per_run_net_of_idle"]
        targets.append({
            "figure": f"worker CPU per quiet run, net of idle ({where})",
            "result": f"{net} ms (gross {entry['worker_cpu_ms_per_run']})",
            "target": f"<= {CPU_PER_RUN_TARGET_MS:.0f} ms",
            "met": net <= CPU_PER_RUN_TARGET_MS and entry["all_ok"],
        })  # fmt: skip
        at = {"resources": c.resources, "items": items, "latency_ms": c.latency_ms,
              "clusters": clusters, "q_workers": c.q_workers}  # fmt: skip
        if at == CYCLE_TARGET_AT:
            targets.append({
                "figure": f"steady cycle ({where})",
                "result": f"{c.cycle_s} s",
                "target": f"<= {CYCLE_TARGET_S:.0f} s",
                "met": c.cycle_s <= CYCLE_TARGET_S and entry["all_ok"],
            })  # fmt: skip
        if base and base.cycle_s and clusters != base.clusters:
            entry["speed_up_vs_first"] = round(base.cycle_s / c.cycle_s, 2)
            entry["ideal_speed_up"] = round(clusters / base.clusters, 2)
        summary[f"{clusters} qcluster"] = entry
    if not any(t["figure"].startswith("steady cycle") for t in targets):
        targets.append({
            "figure": "steady cycle (target only at 1000 x 50, 2 qcluster x 2, 50 ms)",
            "result": "not measured at this size", "target": f"<= {CYCLE_TARGET_S:.0f} s",
            "met": None,
        })  # fmt: skip
    summary["targets"] = targets
    return summary


def print_table(cycles: list[Cycle], summary: dict[str, Any]) -> None:
    header = (
        f"{'cycle':22} {'qcluster':>8} {'x Q_W':>5} {'lat ms':>6} {'res':>5} {'cycle s':>8} "
        f"{'queue s':>7} {'run s avg':>9} {'requests':>8} {'req/res':>7} {'wrk CPU s':>9} "
        f"{'sbx CPU s':>9}  outcomes"
    )
    print(header)
    print("-" * len(header))
    for c in cycles:
        print(
            f"{c.name:22} {c.clusters:>8} {c.q_workers:>5} {c.latency_ms:>6} {c.resources:>5} "
            f"{c.cycle_s:>8.1f} {c.queue_s:>7.1f} {c.run_s_mean:>9.3f} {c.requests:>8} "
            f"{c.requests / c.resources:>7.2f} {c.worker_cpu_s:>9.1f} {c.sandbox_cpu_s:>9.1f}  "
            f"{c.outcomes}"
        )
    print()
    for key, entry in summary.items():
        if isinstance(entry, dict) and "cycle_s" in entry:
            extra = ""
            if "speed_up_vs_first" in entry:
                extra = (
                    f", speed-up {entry['speed_up_vs_first']}x (ideal {entry['ideal_speed_up']}x)"
                )
            print(
                f"{key}: {entry['cycle_s']} s per cycle = {entry['share_of_interval']:.1%} of the "
                f"{summary['interval_s'] // 60}-minute interval{extra}, worker CPU "
                f"{entry['worker_cpu_ms_per_run']} ms per run ("
                f"{entry['worker_cpu_ms_per_run_net_of_idle']} ms net of the clusters' idle "
                f"{entry['idle_cpu_ms_per_s']} ms per second)"
            )
    print()
    header = f"{'figure':66} {'result':>26} {'target':>9}  verdict"
    print(header)
    print("-" * len(header))
    for t in summary.get("targets", []):
        mark = "n/a" if t["met"] is None else "pass" if t["met"] else "FAIL"
        print(f"{t['figure']:66} {t['result']:>26} {t['target']:>9}  {mark}")


# --- the run ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), default="1000x50",
        help="resources x items each (1000x50); --resources/--items override",
    )  # fmt: skip
    parser.add_argument("--resources", type=int, help="enabled resources (the preset's)")
    parser.add_argument("--items", type=int, help="appointments each (the preset's)")
    parser.add_argument("--latency-ms", type=int, default=50, help="sandbox latency (50)")
    parser.add_argument("--workers", default="1,2", help="qcluster process counts to measure (1,2)")
    parser.add_argument("--q-workers", type=int, default=2, help="Q_WORKERS per qcluster (2)")
    parser.add_argument(
        "--setup-q-workers", type=int, default=3, help="Q_WORKERS in the set-up cycles (3)"
    )
    parser.add_argument("--postgres", default=POSTGRES_URL, help="server URL, no database")
    parser.add_argument("--redis", default=REDIS_URL)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--timeout", type=float, default=720.0, help="overall limit, seconds")
    parser.add_argument("--sandbox-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    resources, items = PRESETS[args.preset]
    args.resources = resources if args.resources is None else args.resources
    args.items = items if args.items is None else args.items
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sandbox_child:
        return sandbox_child(args.workdir)
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    env = make_environment(args, workdir)
    create_database(args, env.database)
    sandbox: SandboxProcess | None = None
    # SIGTERM (make interrupted, a CI limit) unwinds like Ctrl+C: children stopped, DB dropped.
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        sandbox = SandboxProcess(env)
        return _bench(args, env, sandbox, deadline=time.monotonic() + args.timeout)
    finally:
        if sandbox is not None:
            sandbox.stop()
        with contextlib.suppress(Exception):
            forget_broker_keys(args.redis, env.cluster)
        drop_database(args, env.database)
        shutil.rmtree(workdir, ignore_errors=True)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _bench(args: argparse.Namespace, env: Environment, sandbox: SandboxProcess,
           deadline: float) -> int:  # fmt: skip
    began = time.perf_counter()
    env.variables["EXCHANGE_CA_BUNDLE"] = sandbox.ca_file
    env.variables["EXCHANGE_ALLOWED_PORTS"] = f"443,{sandbox.port}"
    setup_django(env)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    interval = configure(sandbox.port)
    ids, addresses = make_resources(args.resources, args.items)
    for address in addresses:
        sandbox.call("POST", "/mailboxes", {"address": address, "display_name": address[:10]})
    setup_s = round(time.perf_counter() - began, 1)
    print(f"set-up: {len(ids)} resources x {args.items} items in {setup_s} s",
          file=sys.stderr, flush=True)  # fmt: skip
    from django.db import connections

    connections.close_all()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    n = len(ids)
    cycles: list[Cycle] = []
    for name in ("initial export", "after export"):  # set-up: not measured, no latency
        cycle = Cycle(name, False, max(workers), args.setup_q_workers, 0, n)
        cycles.append(run_cycle(env, sandbox, ids, cycle, deadline))
    for count in workers:
        cycle = Cycle(f"steady, {count} qcluster", True, count, args.q_workers, args.latency_ms, n)
        cycles.append(run_cycle(env, sandbox, ids, cycle, deadline))
    summary = summarise(cycles, interval, args.items)
    print()
    print_table(cycles, summary)
    cycle_rows = [asdict(c) for c in cycles]
    return finish(args, began, setup_s=setup_s, cycles=cycle_rows, summary=summary)


if __name__ == "__main__":
    sys.exit(main())
