"""Run a few long-lived child processes together and stop them together.

Each child gets its own session (process group), so a Ctrl-C in the terminal reaches only the
supervisor, which then stops every child: SIGTERM to the child itself (qcluster shuts its
worker processes down in about a second that way; signalling them all at once makes it wait for
them instead), a bounded wait, then SIGKILL to the whole group for whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_TIMEOUT = 10.0  # seconds a child gets between SIGTERM and SIGKILL


@dataclass
class Child:
    """A command to run; ``log`` None passes its output through to our terminal."""

    name: str
    argv: list[str]
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def tail(self, lines: int = 15) -> str:
        """The last lines of the child's log, to show why it stopped."""
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Supervisor:
    """Starts children, watches them, and stops all of them on a signal or a death."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = False

    def start(self, child: Child) -> None:
        output: IO[bytes] | None = None
        if child.log is not None:
            child.log.parent.mkdir(parents=True, exist_ok=True)
            # One run per log, so the tail shown when a child dies is from this run.
            output = child.log.open("wb")
        child.process = subprocess.Popen(
            child.argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        if output is not None:
            output.close()  # the child holds its own copy of the descriptor
        self.children.append(child)

    def handle_signals(self) -> None:
        """Make SIGINT and SIGTERM end :meth:`watch` instead of killing us mid-way."""

        def request_stop(signum: int, frame: object) -> None:
            self.stop_requested = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def watch(self, idle: Callable[[], None] = lambda: None, poll: float = 0.5) -> Child | None:
        """Block until a stop is requested (None) or a child exits (that child)."""
        while not self.stop_requested:
            exited = self.first_exited()
            if exited is not None:
                return exited
            idle()
            time.sleep(poll)
        return None

    def first_exited(self) -> Child | None:
        """A child that has exited, if any."""
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every child, wait up to ``timeout``, then SIGKILL their process groups."""
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        # Helpers a child forked (e.g. qcluster's workers) may outlive their leader.
        for child in self.children:
            if child.process is not None:
                _signal_group(child.process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signum)
