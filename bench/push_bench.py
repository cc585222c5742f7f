"""Push benchmark (issue 17): how long an Outlook edit takes to reach the PSA with push on, and
how many Exchange requests push adds in an hour without edits. See ``docs/performance.md``,
section "Push (issue 17)".

Issue 17, "Done means": median and p95 time from an Exchange-side edit (its commit in the
sandbox) to the PSA row changed, end to end as deployed — 100 edits over 20 mailboxes, one every
2 s, both backends; target median <= 15 s, p95 <= 60 s; and the extra Exchange requests push
adds in an hour with no edits (renewals only).

How (everything real except the Exchange server, which is the sandbox):

- the embedded default deployment: a file SQLite database in a temporary directory and the
  django-q2 ORM broker on it (no ``REDIS_URL``), ``Q_WORKERS`` and the broker's poll at the
  product's defaults; one migrated database per backend, copied from a template;
- real processes: ``manage.py runserver --noreload`` (the PSA) behind a TLS-terminating front
  (``tests/tls_front.TlsFront``, in this process, with the sandbox's ``localhost`` certificate;
  ``PSA_BASE_URL=https://localhost:<front port>``), ``manage.py qcluster`` and ``manage.py
  exchange_listen`` (for both backends, as ``make run`` starts it); the sandbox in a child
  process of its own (``bench/scale_bench.SandboxProcess``, schema validation off, real
  protocol minutes);
- the configuration: appointments imported with all details, contacts off, the polling
  interval at 30 minutes (no slot due during the edits for most mailboxes; every run's trigger
  is recorded and each edit says which run brought it in); EWS: ``svc-sync`` impersonating;
  Graph: the sandbox tenant's app with a client secret;
- set-up, not measured: ``--items`` PSA appointments per resource (bulk-inserted, exported by
  the initial sync), the initial sync of each mailbox, the subscriptions (Graph: the
  ``exchange-push`` schedule's task in ``qcluster``; EWS: the listener), then until no sync
  runs or is queued; the initial syncs and the first push task are queued at once instead of
  at the cluster's first scheduler round, 30 s after it starts;
- the quiet period (``--quiet-minutes``): no edits; the sandbox's requests by operation, each
  attributed to polling when a run the polling schedule started (trigger "Scheduled") was
  running for that mailbox at that moment, else to push; push's share extrapolated to an hour,
  plus what the schedule makes certain but a few minutes cannot show: Graph renewals (one
  renewal run is made in this process with the clock moved to when it is due, and its
  requests counted) and EWS reconnects (each ``GetStreamingEvents`` connection is renewed at
  the ``ConnectionTimeout`` the listener asks for, read from the sandbox);
- the edits: ``--edits`` Outlook edits through the sandbox's control API (the backdoor),
  round robin over the mailboxes, one every ``--every`` seconds on a fixed timetable: a
  mailbox's odd rounds update the appointment its previous round created (new subject and
  times), the others create one. The clock starts when the control API call returns (the edit
  is committed in the sandbox then); it stops when this process sees the PSA appointment with
  the new subject (a query every 0.1 s). The row's ``updated_at`` is reported too (written,
  before its transaction committed), and per backend the runs by trigger and outcome and what
  the process logs hold of SQLite lock errors, tracebacks and HTTP 5xx answers.

Every process is stopped at the end, on failure, on Ctrl-C and on SIGTERM (SIGTERM, then
SIGKILL of its process group); ``--timeout`` bounds the whole run (SIGALRM), stopping included.

    .venv/bin/python bench/push_bench.py [--backend ews|graph|both] [--edits 100]
        [--mailboxes 20] [--every 2] [--items 10] [--quiet-minutes 3] [--tail 120]
        [--json PATH] [--timeout 1800] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from report import finish  # bench/report.py, beside this script
from scale_bench import (
    CONFIG_PREFIXES,
    MANAGE,
    Environment,
    SandboxProcess,
    make_resources,
    setup_django,
    stop_group,
    wait_running,
)
from sync_bench import configure as configure_sandbox
from sync_bench import time_limit

ROOT = Path(__file__).resolve().parents[1]
#: Issue 17's targets, seconds from the edit to the PSA row.
MEDIAN_TARGET_S = 15.0
P95_TARGET_S = 60.0
INTERVAL_MINUTES = 30  # the polling interval: the safety net, not what is measured
POLL_S = 0.1  # how often this process looks for the edited rows
SETTLE_S = 3.0  # no sync running or queued for this long: the set-up is over
SETUP_WAIT_S = 240.0  # each set-up step (processes, initial syncs, subscriptions)
STOP_RESERVE_S = 20.0  # of --timeout, kept for stopping the processes
#: Operations only push makes (EWS streaming; Graph subscriptions).
PUSH_OPERATIONS = ("Subscribe", "GetStreamingEvents", "Unsubscribe")
PUSH_PREFIX = "graph:subscriptions."
#: What a run may take before and after the requests it made (clocks of one host).
RUN_SLACK = dt.timedelta(seconds=1)
SUBJECT = "Push bench {k:03d}"


# --- the deployment ---------------------------------------------------------------------------


@dataclass
class Deployment:
    """One backend's processes: the sandbox, the web server, qcluster and the listener."""

    env: Environment
    web_port: int = 0
    sandbox: SandboxProcess | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.env.workdir / f"{name}.log"

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        """``manage.py <argv>`` in a process group of its own, its output in ``<name>.log``."""
        with self.log(name).open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, MANAGE, *argv],
                env=self.env.child_env(),
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def check_alive(self) -> None:
        """Raise when a process died (with the end of its log)."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{tail}")
        if self.sandbox is not None and self.sandbox.process.poll() is not None:
            raise RuntimeError("the sandbox exited:\n" + self.tail("sandbox"))

    def tail(self, name: str) -> str:
        path = self.log(name)
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Listener and workers first (they talk to the others), then the web server, then the
        sandbox; each SIGTERM, then SIGKILL of its group."""
        for name in ("exchange_listen", "qcluster", "web"):
            process = self.processes.pop(name, None)
            if process is not None:
                stop_group(process, grace=5.0)
        if self.sandbox is not None:
            stop_group(self.sandbox.process, grace=5.0)
            self.sandbox = None


def make_environment(workdir: Path) -> Environment:
    """The variables every process shares (the sandbox's and the front's are added later)."""
    from cryptography.fernet import Fernet

    env = Environment(workdir, str(workdir / "psa.sqlite3"), "psa", "")
    env.variables = {
        "DJANGO_SETTINGS_MODULE": "psa.settings",
        "PYTHONPATH": str(ROOT),
        "PSA_VAR_DIR": str(workdir / "var"),
        "DATABASE_URL": f"sqlite:///{workdir / 'psa.sqlite3'}",
        # DEBUG off, as deployed: no per-query log growing in long-lived processes.
        "DJANGO_DEBUG": "false",
        # The front terminates TLS and cannot add X-Forwarded-Proto: no redirect to https.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "EXCHANGE_SECRET_KEYS": Fernet.generate_key().decode(),
        "EXCHANGE_RETRY_BUDGET_SECONDS": "30",
        # The sandbox is on loopback, which the product refuses unless listed.
        "EXCHANGE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        # The resources' setup emails are not part of the measurement.
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    return env


def trust_sandbox(env: Environment, sandbox: SandboxProcess) -> None:
    """Point every process (and this one: the renewal run) at this backend's sandbox."""
    base = f"https://localhost:{sandbox.port}"
    variables = {
        "EXCHANGE_CA_BUNDLE": sandbox.ca_file,
        "EXCHANGE_ALLOWED_PORTS": f"443,{sandbox.port}",
        "GRAPH_AUTHORITY_URL": base,
        "GRAPH_BASE_URL": base,
    }
    env.variables |= variables
    os.environ.update(variables)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_database(env: Environment, template: Path) -> None:
    """This backend's database: a copy of the migrated template (no connection open)."""
    from django.db import connections

    connections.close_all()
    target = Path(env.database)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)


def make_template(env: Environment) -> Path:
    """Migrate once; keep the file (checkpointed, closed) as every backend's starting point."""
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0, interactive=False)
    connections.close_all()
    with contextlib.closing(sqlite3.connect(env.database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    template = env.workdir / "template.sqlite3"
    shutil.copyfile(env.database, template)
    return template


# --- set-up (not measured) --------------------------------------------------------------------


def configure(port: int, backend: str) -> None:
    """The sync benchmark's General tab (the sandbox, the backend, contacts off), with
    appointments imported with all details and polling every 30 minutes."""
    from exchange_ext.models import ExchangeConfig

    configure_sandbox(port, backend)
    config = ExchangeConfig.load()
    config.profile_name = "Push benchmark sandbox"
    config.import_mode = "all"
    config.sync_interval_minutes = INTERVAL_MINUTES
    config.save()
    assert config.backend_name == backend


def wait_until(
    deployment: Deployment,
    condition: Callable[[], Any],
    what: Callable[[], str] | str,
    timeout: float = SETUP_WAIT_S,
) -> Any:
    """Poll ``condition`` until it is truthy (its value is returned); raise on timeout or a
    dead process."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        deployment.check_alive()
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise TimeoutError(f"set-up: not within {timeout:.0f} s: {said}")
        time.sleep(0.25)
    return value


def web_up(port: int, front_url: str, context: ssl.SSLContext) -> bool:
    """The web server accepts connections, then answers through the front (any HTTP status:
    the health check's verdict does not matter here)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with urllib.request.urlopen(f"{front_url}/healthz", context=context, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def initial_syncs_done(ids: list[int]) -> bool:
    """Every mailbox finished a run; a failed one stops the benchmark (with its error)."""
    from exchange_ext.models import SyncRun

    finished = SyncRun.objects.filter(mailbox_settings_id__in=ids).exclude(
        outcome=SyncRun.Outcome.RUNNING
    )
    bad = finished.exclude(outcome=SyncRun.Outcome.OK).first()
    if bad is not None:
        raise RuntimeError(
            f"set-up: a sync of mailbox {bad.mailbox_settings_id} ended {bad.outcome}: {bad.error}"
        )
    return finished.values("mailbox_settings_id").distinct().count() == len(ids)


def graph_subscribed(count: int) -> bool:
    from exchange_ext.models import GraphSubscription

    return GraphSubscription.objects.filter(subscription_id__isnull=False).count() >= count


def graph_subscription_errors() -> str:
    from exchange_ext.models import GraphSubscription

    rows = GraphSubscription.objects.exclude(error="").values_list("address", "error")[:3]
    return f"Graph subscriptions not all created; errors: {list(rows) or 'none yet'}"


def ews_streaming(sandbox: SandboxProcess, addresses: list[str]) -> dict[str, Any] | None:
    """The sandbox's streaming state once every mailbox has a subscription on an open stream."""
    state = sandbox.call("GET", "/streaming")
    streamed = {s["mailbox"].lower() for s in state["subscriptions"] if s["connection"]}
    return state if {a.lower() for a in addresses} <= streamed else None


def settled(since: list[float]) -> bool:
    """No sync running or queued for :data:`SETTLE_S` (``since`` keeps when it became so)."""
    from exchange_ext.models import MailboxSettings, SyncRun

    busy = (
        SyncRun.objects.filter(outcome=SyncRun.Outcome.RUNNING).exists()
        or MailboxSettings.objects.filter(queued_at__isnull=False).exists()
    )
    if busy:
        since.clear()
        return False
    if not since:
        since.append(time.monotonic())
    return time.monotonic() - since[0] >= SETTLE_S


# --- the quiet period -------------------------------------------------------------------------


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def is_push_operation(operation: str) -> bool:
    return operation in PUSH_OPERATIONS or operation.startswith(PUSH_PREFIX)


def attribute(
    entries: list[dict[str, Any]], runs: list[tuple[str, str, dt.datetime, dt.datetime | None]]
) -> dict[str, dict[str, int]]:
    """Operation → {"total", "polling", "push"} over HTTP requests (a Graph ``$batch`` counts
    once). ``runs``: (mailbox address, trigger, started, finished) of the runs in the period.

    A request is polling's when a run the schedule started was running at that moment for its
    mailbox (a token request: for any mailbox); everything else is push's (its operations, the
    runs its notifications started, and anything unexplained — counted against push)."""
    from exchange_ext.models import SyncRun

    scheduled = [
        (address.lower(), started - RUN_SLACK, (finished or dt.datetime.now(dt.UTC)) + RUN_SLACK)
        for address, trigger, started, finished in runs
        if trigger == SyncRun.Trigger.SCHEDULED
    ]
    table: dict[str, dict[str, int]] = {}
    for entry in entries:
        if entry.get("in_batch"):
            continue
        operation = entry.get("operation") or "(unparsed)"
        at, mailbox = _parse(entry["time"]), (entry.get("mailbox") or "").lower()
        polling = not is_push_operation(operation) and any(
            (not mailbox or mailbox == address) and start <= at <= end
            for address, start, end in scheduled
        )
        row = table.setdefault(operation, {"total": 0, "polling": 0, "push": 0})
        row["total"] += 1
        row["polling" if polling else "push"] += 1
    return dict(sorted(table.items()))


def quiet_period(
    deployment: Deployment, minutes: float, backend: str, addresses: list[str]
) -> dict[str, Any]:
    """Push on, no edits, ``minutes`` long: the sandbox's requests by operation, attributed."""
    from django.utils import timezone

    from exchange_ext.models import SyncRun

    sandbox = deployment.sandbox
    assert sandbox is not None
    sandbox.call("DELETE", "/requests")
    began, started = timezone.now(), time.monotonic()
    print(f"   quiet period: {minutes:g} min, no edits", file=sys.stderr, flush=True)
    while time.monotonic() - started < minutes * 60:
        deployment.check_alive()
        time.sleep(min(1.0, max(0.0, minutes * 60 - (time.monotonic() - started))))
    ended = timezone.now()
    log = sandbox.call("GET", "/requests")
    runs = list(
        SyncRun.objects.filter(started_at__lt=ended)
        .exclude(finished_at__lt=began)
        .values_list("mailbox_settings__mailbox", "trigger", "started_at", "finished_at")
    )
    entries = [e for e in log["requests"] if began - RUN_SLACK <= _parse(e["time"]) <= ended]
    table = attribute(entries, runs)
    hours = (ended - began).total_seconds() / 3600
    push_measured = sum(row["push"] for row in table.values())
    return {
        "minutes": round(hours * 60, 2),
        "by_operation": table,
        "runs_by_trigger": dict(Counter(trigger for _, trigger, _, _ in runs)),
        "requests": sum(row["total"] for row in table.values()),
        "polling": sum(row["polling"] for row in table.values()),
        "push": push_measured,
        "push_per_hour_measured": round(push_measured / hours, 1) if hours else None,
        "streaming": _streaming_summary(sandbox) if backend == "ews" else None,
        "mailboxes": len(addresses),
    }


def _streaming_summary(sandbox: SandboxProcess) -> dict[str, Any]:
    state = sandbox.call("GET", "/streaming")
    connections = state["connections"]
    return {
        "connections": len(connections),
        "timeout_minutes": sorted({c["timeout_minutes"] for c in connections}),
        "subscriptions": len(state["subscriptions"]),
    }


def graph_renewal_run(deployment: Deployment) -> dict[str, Any]:
    """One ``exchange-push`` run at the moment renewals fall due (the push job's own code, in
    this process, its clock moved on; Graph renews for real): its requests by operation.

    Counted, after the syncs settled: the subscription requests and those that name no mailbox
    (token, discovery); a sync a polling slot starts meanwhile names its mailbox and is left
    out (``left_out``)."""
    from django.utils import timezone

    from exchange_ext.backends.graph import auth as graph_auth
    from exchange_ext.jobs import push

    sandbox = deployment.sandbox
    assert sandbox is not None
    since: list[float] = []
    wait_until(deployment, lambda: settled(since), "no sync running or queued")
    graph_auth.forget_token_sources()  # a first call of the day: its token counts
    due_after = push.LIFETIME - push.RENEW_WITHIN
    sandbox.call("DELETE", "/requests")
    summary = push.maintain_graph_subscriptions(
        timezone.now() + due_after + dt.timedelta(minutes=5)
    )
    entries = [e for e in sandbox.call("GET", "/requests")["requests"] if not e.get("in_batch")]
    mine = Counter(
        e["operation"] or "(unparsed)"
        for e in entries
        if is_push_operation(e["operation"] or "") or not e.get("mailbox")
    )
    return {
        "renewed": summary.renewed,
        "failed": summary.failed,
        "every_hours": due_after.total_seconds() / 3600,
        "by_operation": dict(sorted(mine.items())),
        "requests": sum(mine.values()),
        "left_out": len(entries) - sum(mine.values()),
    }


def extra_per_hour(backend: str, quiet: dict[str, Any], renewal: dict[str, Any] | None) -> dict:
    """Push's extra requests in an hour without edits: the schedule's certain part (Graph
    renewals, EWS reconnects) plus the rest of what the quiet period measured, per hour."""
    hours = quiet["minutes"] / 60 or 1.0
    if backend == "graph" and renewal is not None:
        scheduled = renewal["requests"] / renewal["every_hours"]
        covered = set(renewal["by_operation"])  # what a renewal run does
        how = (
            f"{renewal['requests']} requests per renewal run "
            f"({renewal['renewed']} renewals), one run every {renewal['every_hours']:g} h"
        )
    else:
        streaming = quiet.get("streaming") or {}
        timeouts = streaming.get("timeout_minutes") or [0]
        timeout = max(timeouts)
        scheduled = streaming.get("connections", 0) * 60 / timeout if timeout else 0.0
        covered = {"GetStreamingEvents"}
        how = (
            f"{streaming.get('connections', 0)} GetStreamingEvents connection(s) renewed "
            f"every {timeout} min"
        )
    rest = sum(row["push"] for op, row in quiet["by_operation"].items() if op not in covered)
    total = scheduled + rest / hours
    return {
        "scheduled_per_hour": round(scheduled, 2),
        "scheduled_how": how,
        "other_measured": rest,
        "other_per_hour": round(rest / hours, 1),
        "total_per_hour": round(total, 2),
        "per_mailbox_per_hour": round(total / max(quiet["mailboxes"], 1), 3),
    }


# --- the edits --------------------------------------------------------------------------------


@dataclass
class Edit:
    """One Outlook edit and when its PSA row was seen."""

    k: int
    mailbox: str
    mailbox_id: int
    kind: str  # create | update
    subject: str
    edit_s: float = 0.0  # when the control API call returned (monotonic)
    edit_at: str = ""  # the same moment, UTC
    latency_s: float | None = None  # until this process saw the row
    written_s: float | None = None  # until the row's updated_at (written, not yet committed)
    served_by: str | None = None  # the trigger of the run that wrote the row
    written_at: dt.datetime | None = field(default=None, repr=False)  # the row's updated_at
    item_id: str = field(default="", repr=False)


def edit_times(k: int, base: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Where edit ``k`` puts its appointment: 15 minutes apart, from ``base``."""
    start = base + dt.timedelta(minutes=15 * k)
    return start, start + dt.timedelta(minutes=30)


def make_edit(
    sandbox: SandboxProcess,
    k: int,
    address: str,
    mailbox_id: int,
    last: Edit | None,
    base: dt.datetime,
) -> Edit:
    """Create an appointment, or update the one ``last`` created (subject and times)."""
    subject = SUBJECT.format(k=k)
    start, end = edit_times(k, base)
    fields = {"subject": subject, "start": start.isoformat(), "end": end.isoformat()}
    path = f"/mailboxes/{urllib.parse.quote(address)}"
    if last is not None:
        edit = Edit(k, address, mailbox_id, "update", f"{subject} (was {last.k:03d})")
        fields["subject"] = edit.subject
        sandbox.call("PATCH", f"{path}/items/{urllib.parse.quote(last.item_id, safe='')}", fields)
        edit.item_id = last.item_id
    else:
        edit = Edit(k, address, mailbox_id, "create", subject)
        edit.item_id = sandbox.call("POST", f"{path}/folders/calendar/items", fields)["id"]
    edit.edit_s = time.monotonic()
    edit.edit_at = dt.datetime.now(dt.UTC).isoformat()
    return edit


def look_for(pending: dict[str, Edit]) -> None:
    """Stamp the edits whose PSA row exists now."""
    from psa.scheduling.models import Appointment

    if not pending:
        return
    found = Appointment.objects.filter(title__in=list(pending)).values_list("title", "updated_at")
    now = time.monotonic()
    for title, updated_at in found:
        edit = pending.pop(title, None)
        if edit is not None:
            edit.latency_s = round(now - edit.edit_s, 3)
            edit.written_at = updated_at
            edit.written_s = round((updated_at - _parse(edit.edit_at)).total_seconds(), 3)


def run_edits(
    deployment: Deployment,
    args: argparse.Namespace,
    ids: list[int],
    addresses: list[str],
    deadline: float,
) -> list[Edit]:
    """The timetable: edit k at start + k × every; the rows looked for in between, then for
    ``--tail`` seconds after the last edit (or until ``deadline``)."""
    sandbox = deployment.sandbox
    assert sandbox is not None
    base = dt.datetime.now(dt.UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    base += dt.timedelta(days=2)
    edits: list[Edit] = []
    pending: dict[str, Edit] = {}
    last: dict[str, Edit] = {}
    began = time.monotonic()
    for k in range(args.edits):
        n = k % len(addresses)
        while (wait := began + k * args.every - time.monotonic()) > 0:
            look_for(pending)
            time.sleep(min(POLL_S, wait))
        look_for(pending)
        # An odd round updates what the mailbox's previous round created, once the PSA has it
        # (else the update would rename a row never seen): otherwise it creates.
        previous = last.get(addresses[n]) if (k // len(addresses)) % 2 else None
        if previous is not None and previous.latency_s is None:
            previous = None
        edit = make_edit(sandbox, k, addresses[n], ids[n], previous, base)
        edits.append(edit)
        pending[edit.subject] = edit
        last[addresses[n]] = edit
        if k % 10 == 9:
            deployment.check_alive()
            print(
                f"   {k + 1}/{args.edits} edits, {len(pending)} not in the PSA yet",
                file=sys.stderr,
                flush=True,
            )
    until = min(time.monotonic() + args.tail, deadline)
    while pending and time.monotonic() < until:
        look_for(pending)
        time.sleep(POLL_S)
    look_for(pending)
    deployment.check_alive()
    _served_by(edits)
    return edits


def _served_by(edits: list[Edit]) -> None:
    """The trigger of the run that wrote each seen row: its mailbox's run whose span holds the
    row's ``updated_at`` as first seen (a later update of the same row does not count)."""
    from exchange_ext.models import SyncRun

    for edit in edits:
        at = edit.written_at
        if at is None:
            continue
        run = (
            SyncRun.objects.filter(mailbox_settings_id=edit.mailbox_id, started_at__lte=at)
            .exclude(finished_at__lt=at)
            .order_by("-started_at")
            .first()
        )
        edit.served_by = run.trigger if run else None


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``inf`` for edits never seen)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def _seconds(value: float) -> float | None:
    """Rounded seconds; None for ``inf`` (an edit never seen: JSON has no infinity)."""
    return None if math.isinf(value) else round(value, 2)


def latency_summary(edits: list[Edit]) -> dict[str, Any]:
    """Median, p95, min, max over every edit (one never seen counts as infinitely late), per
    kind, and which runs served them."""
    seen = [e.latency_s for e in edits if e.latency_s is not None]
    values = seen + [math.inf] * (len(edits) - len(seen))
    written = [e.written_s for e in edits if e.written_s is not None]
    summary: dict[str, Any] = {
        "edits": len(edits),
        "creates": sum(e.kind == "create" for e in edits),
        "updates": sum(e.kind == "update" for e in edits),
        "seen": len(seen),
        "missing": len(edits) - len(seen),
        "served_by": dict(Counter(e.served_by or "unknown" for e in edits if e.latency_s)),
        "median_s": _seconds(statistics.median(values)),
        "p95_s": _seconds(percentile(values, 0.95)),
        "min_s": _seconds(min(values)),
        "max_s": _seconds(max(values)),
        "mean_s": round(statistics.fmean(seen), 2) if seen else None,
        "written_median_s": round(statistics.median(written), 2) if written else None,
    }
    for kind in ("create", "update"):
        mine = [
            e.latency_s if e.latency_s is not None else math.inf for e in edits if e.kind == kind
        ]
        summary[f"{kind}_median_s"] = _seconds(statistics.median(mine)) if mine else None
    return summary


# --- one backend ------------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    setup_s: float = 0.0
    latency: dict[str, Any] = field(default_factory=dict)
    runs_by_trigger: dict[str, int] = field(default_factory=dict)
    runs_by_outcome: dict[str, int] = field(default_factory=dict)
    quiet: dict[str, Any] = field(default_factory=dict)
    renewal: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)
    log_problems: dict[str, dict[str, int]] = field(default_factory=dict)


def scan_logs(deployment: Deployment) -> dict[str, dict[str, int]]:
    """Per process log: SQLite lock errors, tracebacks and HTTP 5xx answers (the web server's
    request lines), so a run that only looked right is told apart (all 0 in a clean run)."""
    found: dict[str, dict[str, int]] = {}
    for name in ("web", "qcluster", "exchange_listen", "sandbox"):
        path = deployment.log(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        found[name] = {
            "database_locked": text.count("database is locked"),
            "tracebacks": text.count("Traceback (most recent call last)"),
            "http_5xx": len(re.findall(r'" 5\d\d \d', text)) if name == "web" else 0,
        }
    return found


def run_backend(
    backend: str,
    args: argparse.Namespace,
    env: Environment,
    template: Path,
    front_url: str,
    deployment: Deployment,
    deadline: float,
) -> BackendResult:
    from django.utils import timezone
    from django_q.tasks import async_task

    from exchange_ext.jobs import dispatcher
    from exchange_ext.jobs.schedules import PUSH_TASK
    from exchange_ext.models import SyncRun

    began = time.perf_counter()
    result = BackendResult(backend)
    print(
        f"== {backend}: {args.mailboxes} mailboxes, {args.edits} edits every {args.every:g} s",
        file=sys.stderr,
        flush=True,
    )
    if deployment.sandbox is None:
        deployment.sandbox = SandboxProcess(env)
    sandbox = deployment.sandbox
    trust_sandbox(env, sandbox)
    fresh_database(env, template)
    configure(sandbox.port, backend)
    ids, addresses = make_resources(args.mailboxes, args.items)
    for address in addresses:
        sandbox.call("POST", "/mailboxes", {"address": address, "display_name": address[:10]})
    from django.db import connections

    connections.close_all()
    deployment.start("web", ["runserver", f"127.0.0.1:{deployment.web_port}", "--noreload"])
    deployment.start("qcluster", ["qcluster"])
    # As deployed, the listener runs whichever the backend (with Graph it holds nothing).
    deployment.start("exchange_listen", ["exchange_listen"])
    wait_until(
        deployment,
        lambda: web_up(deployment.web_port, front_url, sandbox.context),
        "the web server answers",
    )
    wait_running([deployment.log("qcluster")], [deployment.processes["qcluster"]], SETUP_WAIT_S)
    # The dispatcher and the exchange-push schedule would start at the cluster's first
    # scheduler round (30 s after it starts); set-up is quicker when this process queues their
    # work now, on their own paths (dispatcher queuing, the schedule's task).
    dispatcher.enqueue_syncs(ids, SyncRun.Trigger.RESOURCE_ENABLED)
    if backend == "graph":
        async_task(PUSH_TASK, task_name="push-bench-set-up")
    wait_until(deployment, lambda: initial_syncs_done(ids), "the initial sync of every mailbox")
    if backend == "graph":
        wait_until(deployment, lambda: graph_subscribed(len(ids)), graph_subscription_errors)
    else:
        wait_until(
            deployment,
            lambda: ews_streaming(sandbox, addresses),
            "a streaming subscription of every mailbox on an open stream",
        )
    since: list[float] = []
    wait_until(deployment, lambda: settled(since), "no sync running or queued")
    result.setup_s = round(time.perf_counter() - began, 1)
    print(f"   set-up: {result.setup_s} s", file=sys.stderr, flush=True)

    result.quiet = quiet_period(deployment, args.quiet_minutes, backend, addresses)
    edits_from = timezone.now()
    edits = run_edits(deployment, args, ids, addresses, deadline)
    result.latency = latency_summary(edits)
    hidden = ("item_id", "written_at")
    result.edits = [{k: v for k, v in asdict(e).items() if k not in hidden} for e in edits]
    runs = SyncRun.objects.filter(started_at__gte=edits_from)
    result.runs_by_trigger = dict(Counter(runs.values_list("trigger", flat=True)))
    result.runs_by_outcome = dict(Counter(runs.values_list("outcome", flat=True)))
    if backend == "graph":
        result.renewal = graph_renewal_run(deployment)
    result.extra = extra_per_hour(backend, result.quiet, result.renewal)
    result.log_problems = scan_logs(deployment)
    return result


# --- report -----------------------------------------------------------------------------------


def _met(value: float | None, target: float) -> bool:
    return value is not None and value <= target


def _shown(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def targets(results: list[BackendResult]) -> list[dict[str, Any]]:
    """Issue 17's targets per backend, each ``{figure, result, target, met}``; and that a quiet
    hour costs nothing but renewals (Graph) or reconnects (EWS)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        lat = r.latency
        where = f"{r.backend}, {lat['edits']} edits"
        rows.append(
            {
                "figure": f"edit -> PSA row, median ({where})",
                "result": f"{_shown(lat['median_s'])} s",
                "target": f"<= {MEDIAN_TARGET_S:.0f} s",
                "met": _met(lat["median_s"], MEDIAN_TARGET_S),
            }
        )
        rows.append(
            {
                "figure": f"edit -> PSA row, p95 ({where})",
                "result": f"{_shown(lat['p95_s'])} s",
                "target": f"<= {P95_TARGET_S:.0f} s",
                "met": _met(lat["p95_s"], P95_TARGET_S),
            }
        )
        other = r.extra.get("other_measured", 0)
        besides = "renewals" if r.backend == "graph" else "reconnects"
        rows.append(
            {
                "figure": f"quiet period: push requests besides {besides} ({r.backend})",
                "result": f"{other} in {r.quiet.get('minutes')} min",
                "target": "0",
                "met": other == 0,
            }
        )
    return rows


def print_report(results: list[BackendResult], rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'backend':8} {'edits':>5} {'seen':>5} {'create':>6} {'update':>6} {'median s':>8} "
        f"{'p95 s':>7} {'min s':>6} {'max s':>7} {'written s':>9}  served by (run trigger)"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        lat = r.latency
        print(
            f"{r.backend:8} {lat['edits']:>5} {lat['seen']:>5} {lat['creates']:>6} "
            f"{lat['updates']:>6} {_shown(lat['median_s']):>8} {_shown(lat['p95_s']):>7} "
            f"{_shown(lat['min_s']):>6} {_shown(lat['max_s']):>7} "
            f"{_shown(lat['written_median_s']):>9}  {lat['served_by']}"
        )
    print()
    header = (
        f"{'backend':8} {'quiet period: operation':34} {'requests':>8} {'polling':>8} {'push':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for operation, row in r.quiet["by_operation"].items():
            print(
                f"{r.backend:8} {operation:34} {row['total']:>8} {row['polling']:>8} "
                f"{row['push']:>6}"
            )
        if not r.quiet["by_operation"]:
            print(f"{r.backend:8} {'(no request)':34}")
    print()
    for r in results:
        e = r.extra
        print(
            f"{r.backend}: push adds {e['total_per_hour']} Exchange requests per hour without "
            f"edits for {r.quiet['mailboxes']} mailboxes ({e['per_mailbox_per_hour']} per "
            f"mailbox): {e['scheduled_per_hour']} from the schedule ({e['scheduled_how']}) + "
            f"{e['other_per_hour']} other (measured: {e['other_measured']} in "
            f"{r.quiet['minutes']} min); runs during the edits by trigger: "
            f"{r.runs_by_trigger}, by outcome: {r.runs_by_outcome}"
        )
        problems = {
            name: {k: v for k, v in counts.items() if v} for name, counts in r.log_problems.items()
        }
        problems = {name: counts for name, counts in problems.items() if counts}
        print(f"{r.backend}: problems in the process logs: {problems or 'none'}")
    print()
    header = f"{'figure':58} {'result':>18} {'target':>8}  verdict"
    print(header)
    print("-" * len(header))
    for t in rows:
        mark = "n/a" if t["met"] is None else "pass" if t["met"] else "FAIL"
        print(f"{t['figure']:58} {t['result']:>18} {t['target']:>8}  {mark}")


# --- the run ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("ews", "graph", "both"), default="both")
    parser.add_argument("--edits", type=int, default=100, help="Outlook edits (100)")
    parser.add_argument("--mailboxes", type=int, default=20, help="enabled mailboxes (20)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between edits (2)")
    parser.add_argument("--items", type=int, default=10, help="PSA appointments each (10)")
    parser.add_argument(
        "--quiet-minutes",
        type=float,
        default=3.0,
        help="the quiet period with push on, minutes (3)",
    )
    parser.add_argument(
        "--tail",
        type=float,
        default=120.0,
        help="seconds to wait for rows after the last edit (120)",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="overall limit, seconds, stopping included (1800)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if args.edits < 1 or args.mailboxes < 1 or args.every < 0 or args.quiet_minutes <= 0:
        parser.error("--edits and --mailboxes >= 1, --every >= 0, --quiet-minutes > 0")
    return args


def q_workers() -> int:
    from django.conf import settings

    return int(settings.Q_CLUSTER["workers"])


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in [n for n in os.environ if n.startswith(CONFIG_PREFIXES)]:
        del os.environ[name]  # the caller's database or Redis broker is not this deployment's
    signal.signal(signal.SIGTERM, _interrupted)  # unwinds like Ctrl+C: every process stopped
    workdir = Path(tempfile.mkdtemp(prefix="push-bench-"))
    env = make_environment(workdir)
    deployment = Deployment(env)
    front: Any = None
    began = time.perf_counter()
    failed = True
    try:
        with time_limit(max(args.timeout - STOP_RESERVE_S, 1.0)):
            deadline = time.monotonic() + args.timeout - STOP_RESERVE_S
            # The first sandbox makes the certificates the front serves (the sandbox trusts
            # its own CA for the notification URL); later sandboxes reuse them.
            deployment.sandbox = SandboxProcess(env)
            sys.path.insert(0, str(ROOT))  # tests/tls_front.py
            from tests.tls_front import TlsFront

            certs = Path(deployment.sandbox.ca_file).parent
            deployment.web_port = free_port()
            front = TlsFront(
                deployment.web_port, certs / "localhost.pem", certs / "localhost-key.pem"
            )
            env.variables["PSA_BASE_URL"] = front.url
            setup_django(env)
            template = make_template(env)
            results = []
            for backend in ("ews", "graph") if args.backend == "both" else (args.backend,):
                result = run_backend(backend, args, env, template, front.url, deployment, deadline)
                deployment.stop()
                results.append(result)
        failed = False
    finally:
        if failed:
            for name in ("web", "qcluster", "exchange_listen", "sandbox"):
                if tail := deployment.tail(name):
                    print(f"--- end of {name}.log:\n{tail}", file=sys.stderr)
        deployment.stop()
        if front is not None:
            front.stop()
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = targets(results)
    print()
    print_report(results, rows)
    deployment = {
        "database": "SQLite (file, WAL), django-q2 ORM broker",
        "q_workers": q_workers(),
        "interval_minutes": INTERVAL_MINUTES,
    }
    backends = [asdict(r) for r in results]
    return finish(args, began, deployment=deployment, backends=backends, targets=rows)


if __name__ == "__main__":
    sys.exit(main())
