"""``bench/sync_bench.py`` at a toy size, so the benchmark cannot rot between runs.

It runs as ``make bench`` runs it: a subprocess with its own Django set-up (a temporary SQLite
database), the in-process sandbox, both backends and the memory child process. Only the
deterministic figures are checked (no timings): a quiet cycle costs one request per synced
folder and the same SQL queries whatever the item count.

Under ``make test-clock`` the benchmark runs on the real clock: it is a measuring tool, not
product behaviour at a date, and its many threads (in-process sandbox, exchangelib pools, the
memory child) are where libfaketime 0.9.10 now and then crashes a process with SIGSEGV.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sync_benchmark_runs_at_a_toy_size(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    command = [
        sys.executable, str(ROOT / "bench" / "sync_bench.py"), "--items", "20",
        "--small-items", "5", "--memory-items", "30", "--backend", "both",
        "--json", str(results), "--timeout", "90",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=_real_clock_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steady state" in done.stdout
    data = json.loads(results.read_text())
    phases = data["phases"]
    assert {p["backend"] for p in phases} == {"ews", "graph"}
    assert all(p["outcome"] == "ok" for p in phases), phases
    for backend in ("ews", "graph"):
        targets = data["targets"][backend]
        assert targets["steady_requests"]["met"], targets
        assert targets["steady_sql"]["met"], targets
        assert targets["export_requests"]["met"], targets
    assert [m["backend"] for m in data["memory"]] == ["ews", "graph"]
    assert all(m["exported"] == 30 for m in data["memory"])


def _real_clock_env() -> dict[str, str]:
    """This process's environment without libfaketime's preload and settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    preload = [p for p in env.pop("LD_PRELOAD", "").split(":") if p and "faketime" not in p]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    return env
