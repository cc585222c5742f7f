"""Sync benchmark: ``run_sync`` against the in-process Exchange sandbox (EWS and Graph).

What it measures (issue 5 "Done means", issue 7 for Graph, issue 14 [scale]; see
``docs/performance.md``):

- **steady state**: ``--steady-cycles`` (5) quiet cycles at ``--small-items`` (100) and at
  ``--items`` (5,000), reported as the median *engine time* (wall − the in-process sandbox's
  own server time, per cycle) beside wall time; HTTP requests per operation (from the
  sandbox's request log) and SQL queries (``CaptureQueriesContext`` on the engine's
  connection) per cycle, the two sizes side by side;
- **the first cycle after an export**: requests per operation, and the *content reads of own
  writes* — EWS ``GetItem`` ids and Graph per-item GETs (direct or inside ``$batch``) that
  name an item the export itself created (ids read, from hooks on the in-process sandbox's
  request handlers, against the ids in the mailbox after the export);
- **initial export** of ``--items`` appointments against two baselines on the same sandbox,
  ``--pairs`` (5) pairs each on fresh mailboxes, median ratio: EWS — bare exchangelib
  ``bulk_create`` of the same CalendarItems; Graph — plain ``requests`` ``$batch`` creates (20
  per batch, Graph's limit) of the same event bodies with a client-credentials token;
- **memory** of a ``--memory-items`` (20,000) mailbox, each in a child process of its own (the
  sandbox, which holds the mailbox in memory, stays in this one): the initial export, then a
  full read (a resync requested, one cycle); RSS growth (``VmHWM``) of each.

It sets up its own Django environment (a temporary ``PSA_VAR_DIR`` and SQLite database,
migrated), so it never touches ``var/``. PSA rows are bulk-inserted (set-up, not measured).

    .venv/bin/python bench/sync_bench.py [--items 5000] [--memory-items 20000]
        [--backend ews|graph|both] [--steady-cycles 5] [--pairs 5] [--json PATH] [--validate]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import json
import os
import re
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

from report import finish  # bench/report.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "northwind.example"
SYNC_LOGIN, SYNC_PASSWORD = "svc-sync", "sandbox-sync"
GRAPH_TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
GRAPH_APP, GRAPH_SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
#: Appointments per day in the generated calendars (30-minute slots from 08:00 UTC).
PER_DAY = 16
#: Exchange requests that are not reads of a folder's changes (setup of a session).
TOKEN_OPERATIONS = ("graph:token",)
#: Graph's ``$batch`` limit (https://learn.microsoft.com/graph/json-batching).
GRAPH_BATCH = 20
#: The ``Prefer`` header the bare-Graph baseline sends with each create (as Graph clients do:
#: instants in UTC, immutable ids, text bodies).
GRAPH_PREFER = 'outlook.timezone="UTC", IdType="ImmutableId", outlook.body-content-type="text"'
#: An EWS ``<t:ItemId Id="…">`` in a request body (not ``OccurrenceItemId`` and the like).
EWS_ITEM_ID = re.compile(r'<(?:[\w-]+:)?ItemId\s[^>]*?\bId="([^"]+)"')
#: Graph collections whose ``/{collection}/{id}`` GET reads one item's content.
GRAPH_ITEM_COLLECTIONS = ("events", "contacts")


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
    #: Store ids of the items whose content was read (EWS GetItem, Graph per-item GETs).
    content_reads: list[str] = field(default_factory=list)

    def install(self) -> None:
        """Count every logged request (the log itself keeps only the last 10,000) and note
        the ids of content reads (the log does not record ids: the request handlers are
        wrapped, in this process only)."""
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
        self._watch_content_reads()

    def _watch_content_reads(self) -> None:
        """EWS: the ``ItemId``s of each ``GetItem`` body. Graph: the id of each GET of
        ``…/events/{id}[/…]`` or ``…/contacts/{id}`` (direct or inside ``$batch``: both go
        through ``routes.execute``), mapped back to the store id the EWS side uses."""
        from exchange_ext.sandbox import server as sandbox_server
        from exchange_ext.sandbox.graph import ids as graph_ids
        from exchange_ext.sandbox.graph import routes as graph_routes

        handle_ews, execute = sandbox_server.handle_ews, graph_routes.execute

        def watched_ews(state: Any, body: bytes, headers: Any, facts: Any) -> Any:
            reply = handle_ews(state, body, headers, facts)
            if facts.operation == "GetItem":
                text = body.decode("utf-8", "replace")
                found = [html.unescape(i) for i in EWS_ITEM_ID.findall(text)]
                with self.lock:
                    self.content_reads += found
            return reply

        def watched_execute(state: Any, method: str, parsed: Any, *args: Any) -> Any:
            if method == "GET" and parsed.route is not None:
                rest = list(parsed.rest)
                at = [n for n, s in enumerate(rest[:-1]) if s in GRAPH_ITEM_COLLECTIONS]
                if at:
                    value = rest[at[-1] + 1]
                    with contextlib.suppress(Exception):
                        value = graph_ids.store_id(value)
                    with self.lock:
                        self.content_reads.append(value)
            return execute(state, method, parsed, *args)

        sandbox_server.handle_ews = watched_ews
        graph_routes.execute = watched_execute

    def reset_counts(self) -> None:
        with self.lock:
            self.http, self.batched, self.server_ms = Counter(), Counter(), 0.0
            self.content_reads = []

    def calendar_ids(self, address: str) -> set[str]:
        """The store ids of the items in the mailbox's calendar."""
        store = self.handle.state.store
        folder = store.distinguished_folder(address, "calendar")
        return {item.id for item in store.items_in(folder.id)} if folder else set()

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
    #: wall − sandbox: what the engine (and the client libraries) took, the server's work out.
    engine_s: float = 0.0
    outcome: str = ""
    counts: dict[str, Any] = field(default_factory=dict)
    synced_folders: int = 0
    #: 1, 2, … for the repeated steady-state cycles and export pairs; 0 otherwise.
    cycle: int = 0
    #: Items whose content was read (EWS GetItem ids, Graph per-item GETs), and how many of
    #: those the engine itself wrote in the export before (first cycle after an export only).
    content_reads: int = 0
    content_reads_of_own_writes: int | None = None


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
    if os.environ.get("BENCH_SHOW_SQL") == name:
        for query in queries.captured_queries:
            print("SQL", query["sql"][:200], file=sys.stderr)
    with sandbox.lock:
        http, batched, server_ms = dict(sandbox.http), dict(sandbox.batched), sandbox.server_ms
        reads = list(sandbox.content_reads)
    phase = Phase(
        backend=backend, name=name, items=items, requests=sum(http.values()),
        by_operation=dict(sorted(http.items())), batched=dict(sorted(batched.items())),
        sql_queries=len(queries), wall_s=round(wall, 3), sandbox_s=round(server_ms / 1000, 3),
        engine_s=round(wall - server_ms / 1000, 3), content_reads=len(reads),
    )  # fmt: skip
    return phase, result


def sync_phase(
    sandbox: Sandbox, backend: str, name: str, items: int, settings_id: int, *, cycle: int = 0,
    own_writes: set[str] | None = None,
) -> Phase:  # fmt: skip
    """One ``run_sync`` of the mailbox, measured; with ``own_writes`` (the store ids the export
    created), how many of the items whose content the cycle read are among them."""
    from exchange_ext.engine import run_sync
    from exchange_ext.models import FolderSyncState

    action = lambda: run_sync(settings_id)  # noqa: E731
    if os.environ.get("BENCH_PROFILE") == name:  # a profile of this phase, for engineers
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        action = lambda: profiler.runcall(run_sync, settings_id)  # noqa: E731
    phase, run = measure(sandbox, backend, name, items, action)
    if os.environ.get("BENCH_PROFILE") == name:
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(os.environ.get("BENCH_PROFILE_FILTER", ""), 45)
    phase.outcome, phase.counts, phase.cycle = run.outcome, run.counts, cycle
    if own_writes is not None:
        with sandbox.lock:
            phase.content_reads_of_own_writes = sum(i in own_writes for i in sandbox.content_reads)
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

    ews_items.register_tag_property()
    records = engine_records(source_settings_id)
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
    created = [r for r in replies if not isinstance(r, Exception)]
    if created:  # untimed: one GetItem, to prove the content-read watch sees it
        check_content_read_watch(sandbox, address, lambda: list(account.fetch(ids=created[:1])))
    close_connections()
    return phase


def check_content_read_watch(sandbox: Sandbox, address: str, read_one: Callable[[], Any]):
    """Read one item of ``address`` (untimed) and fail loudly unless the watch on content
    reads named it: "content reads of own writes: 0" must never come from a blind watch."""
    sandbox.reset_counts()
    read_one()
    with sandbox.lock:
        seen = list(sandbox.content_reads)
    if len(seen) != 1 or seen[0] not in sandbox.calendar_ids(address):
        raise RuntimeError(f"the content-read watch saw {seen!r} for one read of {address}")
    sandbox.reset_counts()


def engine_records(settings_id: int) -> list[tuple[Any, Any]]:
    """(record, tag) of every PSA item the engine exports for this mailbox (read untimed)."""
    from exchange_ext.engine import psa_store
    from exchange_ext.models import ExchangeConfig, MailboxSettings
    from exchange_ext.sync.records import PsaTag
    from exchange_ext.sync.windows import window_for

    mailbox = MailboxSettings.objects.select_related("resource").get(pk=settings_id)
    options = psa_store.sync_options(ExchangeConfig.load(), mailbox)
    psa = psa_store.load_psa_items(mailbox, options, window_for(options, dt.datetime.now(dt.UTC)))
    return [(item.record, PsaTag(options.installation_id, key)) for key, item in psa.items()]


def graph_baseline_phase(sandbox: Sandbox, source_settings_id: int, name: str) -> Phase:
    """Bare Graph: plain ``requests`` ``$batch`` POSTs of the same events to a fresh mailbox.

    The event bodies are the engine's (``graph.items.create_body`` of the same PSA records:
    tag property and ``transactionId`` included, so the JSON is the same), built before the
    clock starts; so are the token (client credentials, a form POST to the sandbox's token
    endpoint as msal sends it) and the session. Timed: JSON encoding, 20 creates per
    ``$batch`` (Graph's limit), the server's work, reading the replies. No product code runs
    inside the timing.
    """
    import requests

    from exchange_ext.backends.graph import items as graph_items

    bodies = [graph_items.create_body(record, tag) for record, tag in engine_records(
        source_settings_id)]  # fmt: skip
    address = f"{name}@{DOMAIN}"
    sandbox.add_mailbox(address)
    base = sandbox.handle.base_url
    session = requests.Session()
    session.verify = str(sandbox.handle.ca_file)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE (and proxies) from the environment win
    granted = session.post(
        f"{base}/{GRAPH_TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": GRAPH_APP,
              "client_secret": GRAPH_SECRET, "scope": "https://graph.microsoft.com/.default"},
        timeout=30,
    )  # fmt: skip
    granted.raise_for_status()
    authorization = {"Authorization": f"Bearer {granted.json()['access_token']}"}
    inner_headers = {"Content-Type": "application/json", "Prefer": GRAPH_PREFER}

    def create() -> Counter[int]:
        statuses: Counter[int] = Counter()
        for start in range(0, len(bodies), GRAPH_BATCH):
            chunk = bodies[start : start + GRAPH_BATCH]
            payload = {"requests": [
                {"id": str(n), "method": "POST", "url": f"/users/{address}/events",
                 "headers": inner_headers, "body": body}
                for n, body in enumerate(chunk)
            ]}  # fmt: skip
            reply = session.post(f"{base}/v1.0/$batch", json=payload, headers=authorization,
                                 timeout=60)  # fmt: skip
            reply.raise_for_status()
            statuses.update(int(r["status"]) for r in reply.json()["responses"])
        return statuses

    phase, statuses = measure(sandbox, "graph", "baseline $batch", len(bodies), create)
    first = session.get(f"{base}/v1.0/users/{address}/events", params={"$top": "1"},
                        headers=authorization, timeout=30).json()["value"]  # fmt: skip
    if first:  # untimed: one event GET, to prove the content-read watch sees it
        check_content_read_watch(sandbox, address, lambda: session.get(
            f"{base}/v1.0/users/{address}/events/{first[0]['id']}", headers=authorization,
            timeout=30).raise_for_status())  # fmt: skip
    session.close()
    phase.outcome = "ok" if set(statuses) <= {201} else "errors"
    phase.counts = {"statuses": dict(statuses)}
    return phase


# --- memory (child process) -------------------------------------------------------------------


#: The memory children: what each measures (a fresh process each, so each growth is its own).
MEMORY_MODES = {
    "initial export": "the first cycle of a mailbox: every PSA record, every write, every link",
    "full read (resync)": "a resync requested, one cycle: the whole folder read and re-linked",
}


def memory_worker(settings_id: int, mode: str, traced: bool) -> dict[str, Any]:
    """In the child: one cycle of the mailbox (``mode``: the export, or the full read a resync
    requested before — the cycles holding the most items); print JSON.

    The product's modules (engine, both backends, exchangelib, msal) are imported before the
    "before" figure, as in a worker that has run a cycle: the growth is the cycle's data, not
    code. ``traced``: under ``tracemalloc`` too (its own bookkeeping then counts in the RSS).
    """
    import gc

    import exchange_ext.backends.factory  # noqa: F401  (both backends and their libraries)
    from exchange_ext.engine import run_sync

    gc.collect()
    before = _maxrss_mb()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    run = run_sync(settings_id)
    wall = time.perf_counter() - started
    result: dict[str, Any] = {
        "mode": mode, "outcome": run.outcome, "counts": run.counts, "wall_s": round(wall, 2),
        "rss_before_mib": before, "rss_peak_mib": _maxrss_mb(),
        "under_tracemalloc": traced,
    }  # fmt: skip
    result["rss_growth_mib"] = round(result["rss_peak_mib"] - before, 1)
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["tracemalloc_peak_mib"] = round(peak / 2**20, 1)
    return result


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


def memory_phase(
    sandbox: Sandbox, backend: str, items: int, workdir: Path, deadline: float, traced: bool
) -> dict[str, Any]:
    """Set up an ``items`` mailbox here; in a child process each (no sandbox inside): its
    initial export, then — a resync requested — its full read. RSS growth of both."""
    from django.db import connections
    from django.utils import timezone

    from exchange_ext.models import MailboxSettings

    address = f"bench-{backend}-mem{items}@{DOMAIN}"
    settings_id = make_mailbox(sandbox, address.split("@")[0], items)
    result: dict[str, Any] = {"backend": backend, "items": items}
    for mode in MEMORY_MODES:
        if mode != "initial export":
            MailboxSettings.objects.filter(pk=settings_id).update(
                resync_requested_at=timezone.now())  # fmt: skip
        connections.close_all()
        command = [sys.executable, __file__, "--memory-worker", str(settings_id),
                   "--memory-mode", mode, "--workdir", str(workdir)]  # fmt: skip
        command += ["--tracemalloc"] if traced else []
        sandbox.reset_counts()
        timeout = max(deadline - time.monotonic(), 1.0)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"memory worker ({mode}) failed:\n{done.stderr[-4000:]}")
        entry = json.loads(done.stdout.strip().splitlines()[-1])
        with sandbox.lock:
            entry["requests"] = sum(sandbox.http.values())
        entry["items_in_exchange"] = sandbox.items_in_calendar(address)
        result[mode] = entry
    result["exported"] = result["initial export"]["items_in_exchange"]
    return result


# --- the run ----------------------------------------------------------------------------------


def run_backend(sandbox: Sandbox, backend: str, args: argparse.Namespace) -> list[Phase]:
    """Small mailbox (export, first cycle after it, steady state), then ``--pairs`` large
    mailboxes, each a baseline/export pair (the order alternates, so drift and warm-up favour
    neither side); the first large mailbox also gets its first cycle after the export and
    its steady state."""
    from exchange_ext.backends.graph import auth as graph_auth

    configure(sandbox.handle.port, backend)
    graph_auth.forget_token_sources()
    phases: list[Phase] = []

    def mailbox_cycles(name: str, items: int, settings_id: int) -> None:
        """The first cycle after the export (own writes checked), then the quiet cycles."""
        own_writes = sandbox.calendar_ids(f"{name}@{DOMAIN}")
        phases.append(sync_phase(sandbox, backend, "after export", items, settings_id,
                                 own_writes=own_writes))  # fmt: skip
        for n in range(1, args.steady_cycles + 1):
            phases.append(sync_phase(sandbox, backend, "steady state", items, settings_id,
                                     cycle=n))  # fmt: skip

    name = f"bench-{backend}-{args.small_items}"
    small = make_mailbox(sandbox, name, args.small_items)
    phases.append(sync_phase(sandbox, backend, "initial export", args.small_items, small))
    mailbox_cycles(name, args.small_items, small)
    for pair in range(1, args.pairs + 1):
        name = f"bench-{backend}-{args.items}-r{pair}"
        large = make_mailbox(sandbox, name, args.items)
        base_name = f"bench-{backend}-baseline-{args.items}-r{pair}"

        def baseline(large: int = large, base_name: str = base_name) -> Phase:
            if backend == "ews":
                return baseline_phase(sandbox, args.items, large, base_name)
            return graph_baseline_phase(sandbox, large, base_name)

        def export(large: int = large) -> Phase:
            return sync_phase(sandbox, backend, "initial export", args.items, large)

        # In the order they run (a list display evaluates left to right).
        pair_phases = [baseline(), export()] if pair % 2 else [export(), baseline()]
        for phase in pair_phases:
            phase.cycle = pair
        phases += pair_phases
        if pair == 1:
            mailbox_cycles(name, args.items, large)
    return phases


#: The issue's targets (issue 14, "Done means"; docs/performance.md, "Targets").
STEADY_RATIO = 1.5  # steady state at --items <= 1.5x the --small-items one (engine time)
AFTER_EXPORT_REQUESTS = {"ews": 12, "graph": 52}  # first cycle after a 5,000-item export
EXPORT_RATIO = 1.15  # initial export <= 1.15x the bare baseline (median of the pairs)
MEMORY_MB = 100  # RSS growth of the export and of the full read, MB (10^6 bytes)
BASELINES = {"ews": "bare exchangelib (build + bulk_create)", "graph": "bare-Graph $batch"}


def _reads(phase: Phase) -> int:
    """Requests that read or write a folder (a token request is session set-up: msal caches
    the token across runs)."""
    return sum(n for op, n in phase.by_operation.items() if op not in TOKEN_OPERATIONS)


def _median(values: list[float]) -> float:
    if not values:
        return 0
    middle = statistics.median(values)
    return int(middle) if float(middle).is_integer() else round(middle, 3)


def steady_summary(phases: list[Phase]) -> dict[str, Any]:
    """Medians over the quiet cycles of one mailbox, and the per-cycle figures."""
    return {
        "cycles": len(phases),
        "engine_s_median": _median([p.engine_s for p in phases]),
        "wall_s_median": _median([p.wall_s for p in phases]),
        "sandbox_s_median": _median([p.sandbox_s for p in phases]),
        "sql_median": _median([p.sql_queries or 0 for p in phases]),
        "requests_median": _median([_reads(p) for p in phases]),
        "engine_s": [p.engine_s for p in phases],
        "wall_s": [p.wall_s for p in phases],
        "sql": [p.sql_queries for p in phases],
        "requests": [_reads(p) for p in phases],
        "synced_folders": max((p.synced_folders for p in phases), default=0),
    }


def summarise(phases: list[Phase], memory: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    """Targets vs results, per backend: each ``{"figure", "result", "target", "met"}`` (plus
    the figures behind it); ``steady`` holds the medians per size."""
    verdicts: dict[str, Any] = {}
    for backend in sorted({p.backend for p in phases}):
        mine = [p for p in phases if p.backend == backend]
        small_n, big_n = args.small_items, args.items
        steady = {
            n: steady_summary([p for p in mine if p.name == "steady state" and p.items == n])
            for n in (small_n, big_n)
        }
        exports = [p for p in mine if p.name == "initial export" and p.items == big_n]
        bases = [p for p in mine if p.name.startswith("baseline")]
        after = {p.items: p for p in mine if p.name == "after export"}
        verdict: dict[str, Any] = {"steady": {str(n): v for n, v in steady.items()}}
        small, big = steady[small_n], steady[big_n]
        if small["cycles"] and big["cycles"]:
            folders = big["synced_folders"]
            verdict["steady_requests"] = {
                "figure": "steady requests per cycle (median)",
                "target": f"<= {folders} (1 per folder)",
                "result": {small_n: small["requests_median"], big_n: big["requests_median"]},
                "met": max(small["requests_median"], big["requests_median"]) <= folders,
            }
            difference = big["sql_median"] - small["sql_median"]
            verdict["steady_sql"] = {
                "figure": f"steady SQL queries {small_n} | {big_n} (median)",
                "target": "equal at both sizes (difference 0)",
                "result": {
                    small_n: small["sql_median"],
                    big_n: big["sql_median"],
                    "difference": difference,
                },
                "per_cycle": {small_n: small["sql"], big_n: big["sql"]},
                "met": difference == 0,
            }
            ratio = big["engine_s_median"] / max(small["engine_s_median"], 1e-6)
            cycles = args.steady_cycles
            verdict["steady_time"] = {
                "figure": f"steady {big_n} / {small_n}, engine time, median of {cycles}",
                "target": f"<= {STEADY_RATIO}x",
                "result": round(ratio, 2),
                "engine_s": {small_n: small["engine_s_median"], big_n: big["engine_s_median"]},
                "wall_s": {small_n: small["wall_s_median"], big_n: big["wall_s_median"]},
                "wall_ratio": round(big["wall_s_median"] / max(small["wall_s_median"], 1e-6), 2),
                "met": ratio <= STEADY_RATIO,
            }
        if big_n in after:
            first = after[big_n]
            limit = AFTER_EXPORT_REQUESTS[backend]
            verdict["after_export_requests"] = {
                "figure": f"first cycle after a {big_n}-item export: requests",
                "target": f"<= {limit}",
                "result": first.requests,
                "by_operation": first.by_operation,
                "in_batch": first.batched,
                "met": first.requests <= limit,
            }
            verdict["own_write_reads"] = {
                "figure": "  content reads of own writes",
                "target": "0",
                "result": first.content_reads_of_own_writes,
                "content_reads": first.content_reads,
                "met": first.content_reads_of_own_writes == 0,
            }
        if exports:
            # EWS: 100 items per CreateItem (issue 5). Graph: 20 requests per $batch is the
            # protocol's floor; issue 7 asks for the figure, this bound only flags regressions.
            per = 100 if backend == "ews" else GRAPH_BATCH
            limit = big_n / per + 10
            worst = max(p.requests for p in exports)
            verdict["export_requests"] = {
                "figure": f"initial export of {big_n}: requests",
                "target": f"<= {big_n}/{per} + 10 = {limit:.0f}",
                "result": worst,
                "met": worst <= limit,
            }
        if exports and bases:
            by_pair = {p.cycle: p for p in bases}
            pairs = [(e, by_pair[e.cycle]) for e in exports if e.cycle in by_pair]
            ratios = [e.wall_s / max(b.wall_s, 1e-6) for e, b in pairs]
            ratio = statistics.median(ratios)
            verdict["export_time"] = {
                "figure": f"initial export / {BASELINES[backend]}, median of {len(pairs)}",
                "target": f"<= {EXPORT_RATIO}x",
                "result": round(ratio, 2),
                "per_pair": [round(r, 2) for r in ratios],
                "export_wall_s": [e.wall_s for e, _ in pairs],
                "baseline_wall_s": [b.wall_s for _, b in pairs],
                "engine_time_ratio": round(
                    statistics.median(e.engine_s / max(b.engine_s, 1e-6) for e, b in pairs), 2
                ),
                "met": ratio <= EXPORT_RATIO,
            }
            if backend == "ews":
                verdict["export_time"]["ratio_vs_bulk_create_alone"] = round(statistics.median(
                    e.wall_s / max(b.wall_s - b.counts.get("build_s", 0.0), 1e-6)
                    for e, b in pairs), 2)  # fmt: skip
        for entry in memory:
            if entry["backend"] != backend:
                continue
            for mode, key in (("initial export", "memory_export"),
                              ("full read (resync)", "memory_resync")):  # fmt: skip
                run = entry.get(mode)
                if not run:
                    continue
                growth_mb = round(run["rss_growth_mib"] * 2**20 / 1e6, 1)
                verdict[key] = {
                    "figure": f"RSS growth, {mode} of {entry['items']} (child)",
                    "target": f"<= {MEMORY_MB} MB",
                    "result": f"{growth_mb} MB",
                    "growth_mb": growth_mb,
                    "outcome": run["outcome"],
                    "met": growth_mb <= MEMORY_MB and run["outcome"] == "ok",
                }
        verdicts[backend] = verdict
    return verdicts


def print_table(phases: list[Phase], memory: list[dict[str, Any]], verdicts: dict[str, Any]):
    header = (
        f"{'backend':7} {'phase':22} {'#':>2} {'items':>6} {'requests':>8} {'SQL':>6} "
        f"{'wall s':>7} {'sandbox s':>9} {'engine s':>8} {'reads':>5} {'own':>4}  operations"
    )
    print(header)
    print("-" * len(header))
    for p in phases:
        ops = ", ".join(f"{op} {n}" for op, n in p.by_operation.items())
        if p.batched:
            ops += " | in $batch: " + ", ".join(f"{op} {n}" for op, n in p.batched.items())
        own = "" if p.content_reads_of_own_writes is None else p.content_reads_of_own_writes
        print(
            f"{p.backend:7} {p.name:22} {p.cycle or '':>2} {p.items:>6} {p.requests:>8} "
            f"{p.sql_queries:>6} {p.wall_s:>7.2f} {p.sandbox_s:>9.2f} {p.engine_s:>8.2f} "
            f"{p.content_reads:>5} {own:>4}  {ops}"
        )
    for m in memory:
        for mode in MEMORY_MODES:
            r = m.get(mode)
            if r:
                traced = (f", tracemalloc peak {r['tracemalloc_peak_mib']} MiB"
                          if "tracemalloc_peak_mib" in r else "")  # fmt: skip
                print(
                    f"{m['backend']:7} memory, {mode} of {m['items']}: RSS {r['rss_before_mib']} "
                    f"-> {r['rss_peak_mib']} MiB (+{r['rss_growth_mib']} MiB){traced}, "
                    f"{r['wall_s']} s, {r['outcome']}, {r['items_in_exchange']} items in Exchange"
                )
    print()
    for backend, verdict in verdicts.items():
        for size, v in verdict.get("steady", {}).items():
            if v["cycles"]:
                print(
                    f"{backend:7} steady {size:>6}: engine s {v['engine_s']} (median "
                    f"{v['engine_s_median']}), wall s median {v['wall_s_median']}, SQL "
                    f"{v['sql']}, requests {v['requests']}"
                )
    print()
    header = f"{'backend':7} {'figure':70} {'result':>16} {'target':>24}  verdict"
    print(header)
    print("-" * len(header))
    for backend, verdict in verdicts.items():
        for v in verdict.values():
            if "met" in v:
                result = v["result"]
                if isinstance(result, dict):
                    result = " | ".join(str(x) for x in result.values())
                mark = "pass" if v["met"] else "FAIL"
                print(f"{backend:7} {v['figure']:70} {result!s:>16} {v['target']:>24}  {mark}")


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
        "--pairs", "--repeat", dest="pairs", type=int, default=5,
        help="baseline/export pairs per backend on fresh mailboxes, median ratio (5)",
    )  # fmt: skip
    parser.add_argument(
        "--steady-cycles", type=int, default=5, help="quiet cycles per size, median (5)"
    )
    parser.add_argument(
        "--tracemalloc", action="store_true",
        help="memory children also under tracemalloc (its bookkeeping then counts in RSS)",
    )  # fmt: skip
    parser.add_argument(
        "--validate", action="store_true", help="sandbox schema validation on (off by default)"
    )
    parser.add_argument("--timeout", type=float, default=3000.0, help="overall limit, seconds")
    parser.add_argument("--memory-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-mode", choices=tuple(MEMORY_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker is None:
        if args.items == args.small_items:
            parser.error("--items and --small-items must differ (the two sizes compared)")
        if args.pairs < 1 or args.steady_cycles < 1:
            parser.error("--pairs and --steady-cycles must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_worker is not None:
        setup_django(args.workdir, migrate=False)
        result = memory_worker(args.memory_worker, args.memory_mode, args.tracemalloc)
        print(json.dumps(result))
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
            deadline = time.monotonic() + args.timeout - (time.perf_counter() - started) - 5
            for backend in backends:
                configure(sandbox.handle.port, backend)
                memory.append(memory_phase(sandbox, backend, args.memory_items, workdir,
                                           deadline, args.tracemalloc))  # fmt: skip
        validated = dict(sandbox.handle.state.validator.validated)
    finally:
        sandbox.handle.stop()
    verdicts = summarise(phases, memory, args)
    print_table(phases, memory, verdicts)
    return finish(
        args, started, sandbox_schema_validation=args.validate,
        sandbox_messages_validated=validated, phases=[asdict(p) for p in phases], memory=memory,
        targets=verdicts,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
