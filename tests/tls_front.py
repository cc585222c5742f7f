"""A TLS-terminating front for a plain-HTTP test server, as a reverse proxy is in production.

Microsoft Graph delivers change notifications to https URLs only, so the tests that let the
sandbox post to the PSA serve the PSA (pytest-django's ``live_server``, plain HTTP) behind this
front: TLS with the sandbox's own ``localhost`` certificate (which the sandbox trusts), bytes
piped both ways to the live server. Loopback only; every socket has a timeout and ``stop()``
ends every thread.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from pathlib import Path

IDLE_SECONDS = 30.0


class TlsFront:
    """``https://localhost:<port>`` → ``http://127.0.0.1:<target_port>``."""

    def __init__(self, target_port: int, cert_file: Path, key_file: Path) -> None:
        self.target_port = target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = f"https://localhost:{self.port}"
        self.connections = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, name="tls-front", daemon=True)
        self._accept.start()

    def stop(self) -> None:
        self._stopping.set()
        self._accept.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._pipe, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pipe(self, client: socket.socket) -> None:
        client.settimeout(10)
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()
            return
        with secure, socket.create_connection(("127.0.0.1", self.target_port), timeout=10) as up:
            secure.setblocking(False)
            up.setblocking(False)
            while not self._stopping.is_set():
                pending = secure.pending() > 0
                readable = [secure] if pending else select.select([secure, up], [], [], 0.2)[0]
                if not readable and not pending:
                    continue
                if not self._forward(readable, secure, up):
                    return

    @staticmethod
    def _forward(readable: list[socket.socket], secure: ssl.SSLSocket, up: socket.socket) -> bool:
        for source in readable:
            target = up if source is secure else secure
            try:
                data = source.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                return False
            if not data:
                return False
            with contextlib.suppress(BlockingIOError, ssl.SSLWantWriteError):
                target.setblocking(True)
                target.sendall(data)
                target.setblocking(False)
        return True
