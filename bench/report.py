"""What every benchmark records beside its figures: the machine, and the JSON results file.

The benchmarks run as scripts (``python bench/<name>.py``), so they import this module by its
plain name from their own directory.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def run_header(args: argparse.Namespace) -> dict[str, Any]:
    """What every results file starts with: when, the command line, its options, the machine."""
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """Python, platform, CPU model and count, and the load average at the time of the run."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": _cpu_model(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def write_results(path: Path | None, results: dict[str, Any]) -> None:
    """Write ``results`` as indented JSON to ``path`` (parents created); no-op without a path."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults: {path}")


def finish(args: argparse.Namespace, began: float, **figures: Any) -> int:
    """A benchmark's last step: its results file (``run_header``, then ``figures``, then the
    run's total time since ``began``, a ``time.perf_counter()`` reading) written to
    ``args.json``; returns the exit status, 0."""
    results = {**run_header(args), **figures, "total_s": round(time.perf_counter() - began, 1)}
    write_results(args.json, results)
    return 0
