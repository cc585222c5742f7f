"""Sync benchmark: ``run_sync`` against the in-process Exchange sandbox (EWS and Graph).

What it measures (issue 5 "Done means", issue 7 for Graph; see ``docs/performance.md``):

- **steady state**: a second cycle with nothing changed, at ``--small-items`` (100) and at
  ``--items`` (5,000): HTTP requests per operation (from the sandbox's request log) and SQL
  queries (``CaptureQueriesContext`` on the engine's connection);
- **initial export** of ``--items`` appointments: requests, SQL queries, wall time, and — EWS
  only — a bare exchangelib ``bulk_create`` of the same items to a fresh mailbox on the same
  sandbox, timed side by side in the same run (the ratio is the figure that matters on a
  shared, noisy machine);
- **peak memory** of a ``--memory-items`` (20,000) mailbox: in a child process of its own (the
  sandbox, which holds the mailbox in memory, stays in this one), ``tracemalloc`` peak of the
  Python allocations made during ``run_sync`` and the process's ``ru_maxrss``.

It sets up its own Django environment (a temporary ``PSA_VAR_DIR`` and SQLite database,
migrated), so it never touches ``var/``. PSA rows are bulk-inserted (set-up, not measured).

    .venv/bin/python bench/sync_bench.py [--items 5000] [--memory-items 20000]
        [--backend ews|graph|both] [--json PATH] [--validate]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from report import machine, write_results  # bench/report.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "northwind.example"
SYNC_LOGIN, SYNC_PASSWORD = "svc-sync", "sandbox-sync"
GRAPH_TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
GRAPH_APP, GRAPH_SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
#: Appointments per day in the generated calendars (30-minute slots from 08:00 UTC).
PER_DAY = 16
#: Exchange requests that are not reads of a folder's changes (setup of a session).
TOKEN_OPERATIONS = ("graph:token",)


# --- environment ------------------------------------------------------------------------------


def setup_django(workdir: Path, *, migrate: bool) -> None:
    """Point Django at a throw-away SQLite database in ``workdir`` and set it up."""
    from cryptography.fernet import Fernet

    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "psa.settings"
    os.environ["PSA_VAR_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    # DEBUG off: no per-query log growing in memory (queries are counted explicitly).
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("EXCHANGE_SECRET_KEYS", Fernet.generate_key().decode())
    # The sandbox is on loopback, which the product refuses unless listed (read at setup).
    os.environ["EXCHANGE_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


@dataclass
class Sandbox:
    """The in-process sandbox and a counter of the requests it serves."""

    handle: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    http: Counter[str] = field(default_factory=Counter)
    batched: Counter[str] = field(default_factory=Counter)
    server_ms: float = 0.0

    def install(self) -> None:
        """Count every logged request (the log itself keeps only the last 10,000)."""
        log = self.handle.state.requests
        original = log.record

        def record(**fields: Any) -> Any:
            with self.lock:
                operation = fields.get("operation") or "(unparsed)"
                if fields.get("in_batch"):
                    self.batched[operation] += 1
                else:
                    self.http[operation] += 1
                    self.server_ms += float(fields.get("duration_ms") or 0.0)
            return original(**fields)

        log.record = record

    def reset_counts(self) -> None:
        with self.lock:
            self.http, self.batched, self.server_ms = Counter(), Counter(), 0.0

    def add_mailbox(self, address: str) -> None:
        self.handle.state.add_mailbox(address, address.split("@")[0])

    def items_in_calendar(self, address: str) -> int:
        store = self.handle.state.store
        folder = store.distinguished_folder(address, "calendar")
        return len(store.items_in(folder.id)) if folder else 0


def start_sandbox(workdir: Path, *, validate: bool) -> Sandbox:
    from exchange_ext.sandbox.server import load_config, start_sandbox

    handle = start_sandbox(
        load_config(), tls="ca", port=0, validate=validate, cert_dir=workdir / "certs"
    )
    os.environ["EXCHANGE_CA_BUNDLE"] = str(handle.ca_file)
    os.environ["EXCHANGE_ALLOWED_PORTS"] = f"443,{handle.port}"
    os.environ["GRAPH_AUTHORITY_URL"] = handle.base_url
    os.environ["GRAPH_BASE_URL"] = handle.base_url
    os.environ["EXCHANGE_RETRY_BUDGET_SECONDS"] = "30"
    from exchange_ext.backends.ews.tls import install_exchangelib_trust

    install_exchangelib_trust()
    sandbox = Sandbox(handle)
    sandbox.install()
    return sandbox


def configure(port: int, backend: str) -> None:
    """Point the extension at the sandbox: EWS with svc-sync impersonating, or Graph app-only.

    Appointments, service calls and to-dos on (the defaults), contacts off, no import: the
    synced folder is the calendar.
    """
    from exchange_ext.models import ExchangeConfig
    from exchange_ext.secrets import Secret

    config = ExchangeConfig.load()
    config.profile_name = "Benchmark sandbox"
    config.server_address = f"localhost:{port}"
    config.domain = "NORTHWIND"
    config.use_for_all_users = True
    config.sync_contacts = False
    config.import_mode = "none"
    if backend == "graph":
        config.use_basic_auth, config.use_graph = False, True
        config.tenant_id, config.client_id = GRAPH_TENANT, GRAPH_APP
        config.client_secret = Secret(GRAPH_SECRET)
    else:
        config.use_basic_auth, config.use_graph = True, False
        config.username, config.password = SYNC_LOGIN, Secret(SYNC_PASSWORD)
    config.save()


# --- PSA data (set-up, bulk-inserted) ---------------------------------------------------------


def make_mailbox(sandbox: Sandbox, name: str, items: int) -> int:
    """A resource with ``items`` upcoming appointments, enabled for sync; its settings id."""
    from django.contrib.auth.models import User

    from exchange_ext.web.enrollment import set_enabled_resources
    from psa.audit.origin import Origin
    from psa.resources.actions import do_create_resource
    from psa.scheduling.models import Appointment

    address = f"{name}@{DOMAIN}"
    sandbox.add_mailbox(address)
    user = User.objects.create_user(username=name)
    resource = do_create_resource(
        Origin.by_system("bench"), user=user, first_name="Bench", last_name=name,
        email=address, time_zone="Europe/Berlin",
    )  # fmt: skip
    first = dt.datetime.now(dt.UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    first += dt.timedelta(days=1)
    rows = []
    for n in range(items):
        start = first + dt.timedelta(days=n // PER_DAY, minutes=30 * (n % PER_DAY))
        rows.append(
            Appointment(
                resource=resource, title=f"Site visit {n}", start=start,
                end=start + dt.timedelta(minutes=30), location=f"Room {n % 40}",
                description=f"Check the backup job and the firewall logs ({n}).",
            )
        )  # fmt: skip
    Appointment.objects.bulk_create(rows, batch_size=500)
    [settings] = set_enabled_resources([resource.pk], [])
    return settings.pk


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured step."""

    backend: str
    name: str
    items: int
    requests: int
    by_operation: dict[str, int]
    batched: dict[str, int]
    sql_queries: int | None
    wall_s: float
    sandbox_s: float
    outcome: str = ""
    counts: dict[str, Any] = field(default_factory=dict)
    synced_folders: int = 0


def measure(
    sandbox: Sandbox, backend: str, name: str, items: int, action: Callable[[], Any]
) -> tuple[Phase, Any]:
    """Run ``action`` once, counting requests, SQL queries (this thread) and wall time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sandbox.reset_counts()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = action()
        wall = time.perf_counter() - started
    with sandbox.lock:
        http, batched, server_ms = dict(sandbox.http), dict(sandbox.batched), sandbox.server_ms
    phase = Phase(
        backend=backend, name=name, items=items, requests=sum(http.values()),
        by_operation=dict(sorted(http.items())), batched=dict(sorted(batched.items())),
        sql_queries=len(queries), wall_s=round(wall, 3), sandbox_s=round(server_ms / 1000, 3),
    )  # fmt: skip
    return phase, result


def sync_phase(sandbox: Sandbox, backend: str, name: str, items: int, settings_id: int) -> Phase:
    from exchange_ext.engine import run_sync
    from exchange_ext.models import FolderSyncState

    phase, run = measure(sandbox, backend, name, items, lambda: run_sync(settings_id))
    phase.outcome, phase.counts = run.outcome, run.counts
    phase.synced_folders = FolderSyncState.objects.filter(mailbox_settings_id=settings_id).count()
    if run.outcome != "ok":
        print(f"  ! {backend} {name}: outcome {run.outcome}: {run.error}", file=sys.stderr)
    return phase


def baseline_phase(sandbox: Sandbox, items: int, source_settings_id: int, name: str) -> Phase:
    """Bare exchangelib: ``account.bulk_create`` of the engine's records to a fresh mailbox.

    The items are the very CalendarItems the engine sends (``ews_items.item_for`` of the PSA
    records, tag included, so the XML is the same). Timed: building the CalendarItem objects
    (as any exchangelib script must; ``counts["build_s"]`` reports that part) and
    ``bulk_create`` (exchangelib cleaning and serialising them, 100 per CreateItem, and the
    server's work). The PSA records are read before the clock starts.
    """
    from exchangelib import BASIC, IMPERSONATION, Account, Configuration, EWSTimeZone, FailFast
    from exchangelib.items import SAVE_ONLY, SEND_TO_NONE
    from exchangelib.protocol import close_connections

    from exchange_ext.backends.ews import items as ews_items
    from exchange_ext.backends.ews.backend import SessionCredentials
    from exchange_ext.backends.ews.endpoint import pinned_version
    from exchange_ext.engine import psa_store
    from exchange_ext.models import ExchangeConfig, MailboxSettings
    from exchange_ext.sync.records import PsaTag
    from exchange_ext.sync.windows import window_for

    mailbox = MailboxSettings.objects.select_related("resource").get(pk=source_settings_id)
    options = psa_store.sync_options(ExchangeConfig.load(), mailbox)
    psa = psa_store.load_psa_items(mailbox, options, window_for(options, dt.datetime.now(dt.UTC)))
    ews_items.register_tag_property()
    records = [(item.record, PsaTag(options.installation_id, key)) for key, item in psa.items()]
    address = f"{name}@{DOMAIN}"
    sandbox.add_mailbox(address)
    account = Account(
        address,
        config=Configuration(
            service_endpoint=sandbox.handle.url,
            credentials=SessionCredentials(SYNC_LOGIN, SYNC_PASSWORD),
            auth_type=BASIC,
            version=pinned_version("2016"),
            retry_policy=FailFast(),
        ),
        autodiscover=False,
        access_type=IMPERSONATION,
        default_timezone=EWSTimeZone("UTC"),
    )
    calendar = account.calendar  # resolved before timing (a GetFolder, not counted below)

    timings: dict[str, float] = {}

    def create() -> list[Any]:
        started = time.perf_counter()
        built = [ews_items.item_for(record, tag) for record, tag in records]
        timings["build_s"] = round(time.perf_counter() - started, 3)
        return account.bulk_create(
            folder=calendar, items=built, message_disposition=SAVE_ONLY,
            send_meeting_invitations=SEND_TO_NONE, chunk_size=100,
        )  # fmt: skip

    phase, replies = measure(sandbox, "ews", "baseline bulk_create", len(records), create)
    phase.outcome = "ok" if not any(isinstance(r, Exception) for r in replies) else "errors"
    phase.counts = timings
    close_connections()
    return phase


# --- memory (child process) -------------------------------------------------------------------


def memory_worker(settings_id: int) -> dict[str, Any]:
    """In the child: the initial export under tracemalloc (the cycle holding the most items
    at once: every PSA record, the write results, every new link); print JSON."""
    from exchange_ext.engine import run_sync

    rss_before = _maxrss_mb()
    results: dict[str, Any] = {"rss_before_mb": rss_before}
    for name in ("initial export",):
        tracemalloc.start()
        started = time.perf_counter()
        run = run_sync(settings_id)
        wall = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results[name] = {
            "outcome": run.outcome,
            "tracemalloc_peak_mb": round(peak / 2**20, 1),
            "wall_s_under_tracemalloc": round(wall, 2),
            "maxrss_mb": _maxrss_mb(),
        }
    return results


def _maxrss_mb() -> float:
    """This process's peak resident set size in MiB.

    ``VmHWM`` (Linux): the high-water mark of this program's own memory map, which ``exec``
    starts afresh; ``ru_maxrss`` would carry the parent's figure over from ``fork``.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def memory_phase(sandbox: Sandbox, backend: str, items: int, workdir: Path, timeout: float):
    """Set up a ``items`` mailbox here, measure it in a child process (no sandbox inside)."""
    settings_id = make_mailbox(sandbox, f"bench-{backend}-mem{items}", items)
    from django.db import connections

    connections.close_all()
    command = [sys.executable, __file__, "--memory-worker", str(settings_id)]
    command += ["--workdir", str(workdir)]
    sandbox.reset_counts()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result |= {"backend": backend, "items": items, "exported": sandbox.items_in_calendar(
        f"bench-{backend}-mem{items}@{DOMAIN}")}  # fmt: skip
    return result


# --- the run ----------------------------------------------------------------------------------


def run_backend(sandbox: Sandbox, backend: str, args: argparse.Namespace) -> list[Phase]:
    """Small mailbox (export + steady state), large mailbox (baseline, export, steady state)."""
    from exchange_ext.backends.graph import auth as graph_auth

    configure(sandbox.handle.port, backend)
    graph_auth.forget_token_sources()
    phases: list[Phase] = []
    small = make_mailbox(sandbox, f"bench-{backend}-{args.small_items}", args.small_items)
    phases.append(sync_phase(sandbox, backend, "initial export", args.small_items, small))
    phases.append(sync_phase(sandbox, backend, "after export", args.small_items, small))
    phases.append(sync_phase(sandbox, backend, "steady state", args.small_items, small))
    for repeat in range(args.repeat):
        large = make_mailbox(sandbox, f"bench-{backend}-{args.items}-r{repeat}", args.items)
        if backend == "ews":
            name = f"bench-baseline-{args.items}-r{repeat}"
            phases.append(baseline_phase(sandbox, args.items, large, name))
        phases.append(sync_phase(sandbox, backend, "initial export", args.items, large))
        if repeat == 0:
            phases.append(sync_phase(sandbox, backend, "after export", args.items, large))
            phases.append(sync_phase(sandbox, backend, "steady state", args.items, large))
    return phases


def summarise(phases: list[Phase], memory: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    """Targets vs results, per backend."""
    verdicts: dict[str, Any] = {}
    for backend in sorted({p.backend for p in phases}):
        mine = [p for p in phases if p.backend == backend]
        steady = {p.items: p for p in mine if p.name == "steady state"}
        exports = [p for p in mine if p.name == "initial export" and p.items == args.items]
        big, small = steady.get(args.items), steady.get(args.small_items)
        verdict: dict[str, Any] = {}
        if big and small:
            # Token requests are session set-up (cached by msal across runs), not folder reads.
            def reads(phase: Phase) -> int:
                return sum(n for op, n in phase.by_operation.items() if op not in TOKEN_OPERATIONS)

            verdict["steady_requests"] = {
                "target": f"{big.synced_folders} (one per synced folder)",
                "result": {p.items: reads(p) for p in (small, big)},
                "met": all(reads(p) <= p.synced_folders for p in (small, big)),
            }
            verdict["steady_sql"] = {
                "target": "equal at both sizes",
                "result": {small.items: small.sql_queries, big.items: big.sql_queries},
                "met": small.sql_queries == big.sql_queries,
            }
        if exports:
            # EWS: 100 items per CreateItem (issue 5). Graph: 20 requests per $batch is the
            # protocol's floor; issue 7 asks for the figure, this bound only flags regressions.
            per = 100 if backend == "ews" else 20
            limit = args.items / per + 10
            worst = max(p.requests for p in exports)
            verdict["export_requests"] = {
                "target": f"<= {args.items}/{per} + a small constant (10): {limit:.0f}",
                "result": worst,
                "met": worst <= limit,
            }
            bases = [p for p in phases if p.name.startswith("baseline")]
            if backend == "ews" and bases:
                pairs = list(zip(exports, bases, strict=False))
                ratio = statistics.median(e.wall_s / b.wall_s for e, b in pairs)
                alone = statistics.median(
                    e.wall_s / (b.wall_s - b.counts.get("build_s", 0.0)) for e, b in pairs
                )
                verdict["export_time"] = {
                    "target": "<= 1.3x bare exchangelib (build the items + bulk_create)",
                    "result": round(ratio, 2),
                    "ratio_vs_bulk_create_alone": round(alone, 2),
                    "met": ratio <= 1.3,
                }
        for entry in memory:
            if entry["backend"] == backend:
                verdict["memory"] = {
                    "target": "reported (no target)",
                    "result": entry,
                }
        verdicts[backend] = verdict
    return verdicts


def print_table(phases: list[Phase], memory: list[dict[str, Any]], verdicts: dict[str, Any]):
    header = (
        f"{'backend':7} {'phase':22} {'items':>6} {'requests':>8} {'SQL':>6} "
        f"{'wall s':>7} {'sandbox s':>9}  operations"
    )
    print(header)
    print("-" * len(header))
    for p in phases:
        ops = ", ".join(f"{op} {n}" for op, n in p.by_operation.items())
        if p.batched:
            ops += " | in $batch: " + ", ".join(f"{op} {n}" for op, n in p.batched.items())
        print(
            f"{p.backend:7} {p.name:22} {p.items:>6} {p.requests:>8} {p.sql_queries:>6} "
            f"{p.wall_s:>7.2f} {p.sandbox_s:>9.2f}  {ops}"
        )
    for m in memory:
        for name in ("initial export",):
            r = m[name]
            print(
                f"{m['backend']:7} memory {name:15} {m['items']:>6}: tracemalloc peak "
                f"{r['tracemalloc_peak_mb']} MiB, maxrss {r['maxrss_mb']} MiB "
                f"(before: {m['rss_before_mb']} MiB), {r['wall_s_under_tracemalloc']} s"
            )
    print()
    for backend, verdict in verdicts.items():
        for name, v in verdict.items():
            if "met" in v:
                mark = "met" if v["met"] else "MISSED"
                print(f"{backend:7} {name:16} {mark:6}  result {v['result']}  target {v['target']}")


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Abort the whole benchmark after ``seconds`` (SIGALRM in the main thread)."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the benchmark exceeded its time limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=5000, help="large mailbox (default 5000)")
    parser.add_argument("--small-items", type=int, default=100, help="small mailbox (100)")
    parser.add_argument(
        "--memory-items", type=int, default=20000, help="memory mailbox (20000; 0 skips)"
    )
    parser.add_argument("--backend", choices=("ews", "graph", "both"), default="both")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--repeat", type=int, default=3, help="EWS baseline/export pairs, median ratio (3)"
    )
    parser.add_argument(
        "--validate", action="store_true", help="sandbox schema validation on (off by default)"
    )
    parser.add_argument("--timeout", type=float, default=3000.0, help="overall limit, seconds")
    parser.add_argument("--memory-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_worker is not None:
        setup_django(args.workdir, migrate=False)
        print(json.dumps(memory_worker(args.memory_worker)))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    try:
        with time_limit(args.timeout):
            return _bench(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _bench(args: argparse.Namespace, workdir: Path) -> int:
    started = time.perf_counter()
    setup_django(workdir, migrate=True)
    sandbox = start_sandbox(workdir, validate=args.validate)
    backends = ["ews", "graph"] if args.backend == "both" else [args.backend]
    phases: list[Phase] = []
    memory: list[dict[str, Any]] = []
    try:
        for backend in backends:
            print(f"== {backend}", file=sys.stderr, flush=True)
            phases += run_backend(sandbox, backend, args)
        if args.memory_items > 0:
            for backend in backends:
                configure(sandbox.handle.port, backend)
                remaining = args.timeout - (time.perf_counter() - started) - 5
                memory.append(memory_phase(sandbox, backend, args.memory_items, workdir,
                                           max(remaining, 1)))  # fmt: skip
        validated = dict(sandbox.handle.state.validator.validated)
    finally:
        sandbox.handle.stop()
    verdicts = summarise(phases, memory, args)
    print_table(phases, memory, verdicts)
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "sandbox_schema_validation": args.validate,
        "sandbox_messages_validated": validated,
        "machine": machine(),
        "phases": [asdict(p) for p in phases],
        "memory": memory,
        "targets": verdicts,
        "total_s": round(time.perf_counter() - started, 1),
    }
    write_results(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
