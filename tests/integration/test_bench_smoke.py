"""``bench/sync_bench.py`` at a toy size, so the benchmark cannot rot between runs.

It runs as ``make bench`` runs it: a subprocess with its own Django set-up (a temporary SQLite
database), the in-process sandbox, both backends with their baselines (bare exchangelib,
bare-Graph ``$batch``), and the memory child processes (export, then a resync's full read).
Only the deterministic figures are checked (no timings): a quiet cycle costs one request per
synced folder and the same SQL queries whatever the item count; the first cycle after an
export reads the content of none of the items the export wrote. Every figure the report needs
is present (docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sync_benchmark_runs_at_a_toy_size(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    command = [
        sys.executable, str(ROOT / "bench" / "sync_bench.py"), "--items", "20",
        "--small-items", "5", "--memory-items", "30", "--backend", "both",
        "--steady-cycles", "2", "--pairs", "1", "--json", str(results), "--timeout", "90",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steady state" in done.stdout
    data = json.loads(results.read_text())
    phases = data["phases"]
    assert {p["backend"] for p in phases} == {"ews", "graph"}
    assert all(p["outcome"] == "ok" for p in phases), phases
    assert {(p["backend"], p["name"]) for p in phases if p["name"].startswith("baseline")} == {
        ("ews", "baseline bulk_create"), ("graph", "baseline $batch")}  # fmt: skip
    for backend in ("ews", "graph"):
        mine = [p for p in phases if p["backend"] == backend]
        assert [p["cycle"] for p in mine if p["name"] == "steady state"] == [1, 2, 1, 2]
        assert all(p["engine_s"] <= p["wall_s"] for p in mine)
        targets = data["targets"][backend]
        assert targets["steady_requests"]["met"], targets
        assert targets["steady_sql"]["met"], targets
        assert targets["steady_sql"]["result"]["difference"] == 0, targets
        assert targets["export_requests"]["met"], targets
        assert targets["after_export_requests"]["met"], targets
        assert targets["own_write_reads"]["result"] == 0, targets
        for figure in ("steady_time", "export_time", "memory_export", "memory_resync"):
            assert {"figure", "result", "target", "met"} <= set(targets[figure]), figure
    assert [m["backend"] for m in data["memory"]] == ["ews", "graph"]
    for entry in data["memory"]:
        for mode in ("initial export", "full read (resync)"):
            assert entry[mode]["outcome"] == "ok", entry
            assert entry[mode]["items_in_exchange"] == 30, entry
            assert entry[mode]["rss_growth_mib"] >= 0, entry
    assert "verdict" in done.stdout
