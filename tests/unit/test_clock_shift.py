"""The shifted-clock runs' clock (``tests/clock_shift/sitecustomize.py``, ``make test-clock``).

Checked in a child interpreter, as every process of those runs gets it: the wall clock moves by
the offset in every reading the product uses, in every thread, and keeps passing; monotonic
time and sleeps stay real; a TLS handshake against a certificate the sandbox issued at the
shifted date verifies. Without the variable nothing changes. The parent may itself be shifted
(this test runs in ``make test-clock`` too), so offsets are compared with the parent's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "tests" / "clock_shift"
DAYS_400 = 400 * 86400

CHILD = r"""
import datetime as dt, json, socket, ssl, sys, threading, time
from pathlib import Path

readings = {"time": time.time(), "now": dt.datetime.now(dt.UTC).timestamp(),
            "time_ns": time.time_ns() / 1e9, "monotonic": time.monotonic(),
            "year": int(time.strftime("%Y", time.gmtime()))}
seen = {}
thread = threading.Thread(target=lambda: seen.update(thread=time.time()))
thread.start(); thread.join()
readings.update(seen)
started = time.monotonic(); time.sleep(0.05); readings["slept"] = time.monotonic() - started
readings["passing"] = time.time() - readings["time"]
readings["no_check_time"] = bool(ssl.create_default_context().verify_flags & 0x200000)

from exchange_ext.sandbox import certificates
paths = certificates.ensure_certificates("ca", Path(sys.argv[1]))
server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server.load_cert_chain(paths.cert_file, paths.key_file)
listener = socket.create_server(("127.0.0.1", 0))
def serve():
    conn, _ = listener.accept()
    with server.wrap_socket(conn, server_side=True) as tls:
        tls.sendall(b"ok")
threading.Thread(target=serve, daemon=True).start()
client = ssl.create_default_context(cafile=paths.ca_file)
with socket.create_connection(listener.getsockname()) as raw:
    with client.wrap_socket(raw, server_hostname="localhost") as tls:
        readings["tls"] = tls.recv(2).decode()
print(json.dumps(readings))
"""


def _child(tmp_path: Path, offset: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_CLOCK_OFFSET"}
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(ROOT)])
    if offset is not None:
        env["TEST_CLOCK_OFFSET"] = offset
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "certs")], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _parent_offset() -> int:
    return int(os.environ.get("TEST_CLOCK_OFFSET", "").strip() or 0)


def test_every_reading_in_every_thread_moves_by_the_offset_and_time_keeps_passing(tmp_path):
    before, monotonic_before = time.time(), time.monotonic()
    seen = _child(tmp_path, str(_parent_offset() + DAYS_400))
    after = time.time()
    for reading in ("time", "now", "time_ns", "thread"):
        assert before + DAYS_400 - 1 <= seen[reading] <= after + DAYS_400 + 1, reading
    assert seen["year"] == time.gmtime(seen["time"]).tm_year
    assert monotonic_before <= seen["monotonic"] <= time.monotonic()  # not moved
    assert seen["slept"] >= 0.05
    assert seen["passing"] > 0
    assert seen["no_check_time"] is True
    assert seen["tls"] == "ok"  # a certificate issued 400 days ahead of the real clock


def test_without_the_variable_the_clock_and_tls_are_untouched(tmp_path):
    parent_shift = _parent_offset()
    before = time.time() - parent_shift
    seen = _child(tmp_path, None)
    assert before - 1 <= seen["time"] <= time.time() - parent_shift + 1
    assert seen["no_check_time"] is False
    assert seen["tls"] == "ok"
