"""Which certificate authorities the extension trusts when it talks to Exchange
(docs/reliability.md, "#S5").

Trusted: certifi's CA bundle plus the PEM file named by ``EXCHANGE_CA_BUNDLE`` (an operator's
private CA; also how tests and the demo trust the local sandbox) — and nothing else. There is no
switch that turns verification off, and host names are always checked.

requests would otherwise fall back to its defaults — and to ``REQUESTS_CA_BUNDLE``, which some
machines (this one included) set to the system bundle, and which would replace certifi for the
whole process. The Graph backend's sessions pass :func:`ca_bundle_path` as ``verify``;
exchangelib never passes ``verify``, so :class:`TrustedCAAdapter` sets it on every request
exchangelib sends, once :func:`exchange_ext.backends.ews.tls.install_exchangelib_trust` has
installed it (exchangelib is imported under ``backends/ews/`` only).

The same adapter is where the address a name resolves to is checked
(:mod:`exchange_ext.backends.addresses`): its connections resolve the host name once, refuse
it when any answer is off limits, and connect to the checked address, while TLS (SNI and the
certificate's host name) and the Host header keep the name. Every new connection is checked,
so a name re-pointed after the settings were saved (DNS rebinding) is refused too. Through a
proxy (``HTTPS_PROXY``) the proxy connects and resolves on its own: the name is checked
before each request, the proxy's own address is the operator's choice.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from exchange_ext.backends import addresses
from exchange_ext.backends.limits import BoundedBodyAdapter

CA_BUNDLE_ENV = "EXCHANGE_CA_BUNDLE"

_lock = threading.Lock()
_bundle_cache: dict[tuple[str, int, int], str] = {}


def ca_bundle_path() -> str:
    """The CA file to verify Exchange's certificate against (``EXCHANGE_CA_BUNDLE`` read now).

    Without ``EXCHANGE_CA_BUNDLE``: certifi's bundle. With it: one file holding certifi's
    bundle followed by the operator's, written once under ``var/`` and named by its content
    hash (requests takes a single file). Raises ImproperlyConfigured, naming the variable,
    when the file is missing, unreadable or holds no PEM certificate.
    """
    extra = os.environ.get(CA_BUNDLE_ENV, "").strip()
    if not extra:
        return certifi.where()
    try:
        stat = os.stat(extra)
    except OSError as error:
        raise _bad_bundle(extra, error.strerror or "cannot be read") from None
    key = (extra, stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key not in _bundle_cache:
            _bundle_cache[key] = _write_combined_bundle(extra)
        return _bundle_cache[key]


def _bad_bundle(path: str, reason: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{CA_BUNDLE_ENV}={path}: {reason}")


def _write_combined_bundle(extra_path: str) -> str:
    try:
        extra = Path(extra_path).read_bytes()
    except OSError as error:
        raise _bad_bundle(extra_path, error.strerror or "cannot be read") from None
    if b"-----BEGIN CERTIFICATE-----" not in extra:
        raise _bad_bundle(extra_path, "the file holds no PEM certificate")
    combined = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + extra
    digest = hashlib.sha256(combined).hexdigest()[:20]
    target = Path(settings.VAR_DIR) / "exchange_ca" / f"ca-bundle-{digest}.pem"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a concurrent reader never sees half a bundle.
        temporary = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(combined)
        os.replace(temporary, target)
    return str(target)


class _VettedHTTPConnection(HTTPConnection):
    """Resolves its host once, checks every address, and connects to a checked one.

    Replaces urllib3's ``_new_conn`` (which would resolve the name again inside
    ``create_connection``) and raises the same urllib3 errors for the same failures, so
    requests and exchangelib report them as before.
    """

    def _new_conn(self) -> socket.socket:
        try:
            vetted = addresses.vetted_addresses(self._dns_host, self.port)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        failure: OSError | None = None
        for address in vetted:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as error:  # try the next address, as create_connection does
                failure = error
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(failure, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from failure
        raise NewConnectionError(
            self, f"Failed to establish a new connection: {failure}"
        ) from failure


class _VettedHTTPSConnection(_VettedHTTPConnection, HTTPSConnection):
    """HTTPS: ``connect`` wraps the vetted socket with SNI and the certificate check on the
    host name (urllib3's ``HTTPSConnection.connect`` calls ``_new_conn``)."""


class _VettedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


_VETTED_POOLS = {"http": _VettedHTTPConnectionPool, "https": _VettedHTTPSConnectionPool}


class TrustedCAAdapter(BoundedBodyAdapter):  # bodies read within backends/limits.py
    """Verifies every connection against :func:`ca_bundle_path`, whatever the caller asked, and
    connects only to addresses :func:`~exchange_ext.backends.addresses.vetted_addresses` let
    through (an :class:`~exchange_ext.backends.base.AddressRefused` otherwise).

    ``send`` passes the bundle as ``verify`` so the connection pool is keyed by it (requests'
    shared default SSL context is never touched); ``cert_verify`` repeats it for any path that
    reaches it with another value. Redirects are never followed: exchangelib posts with
    ``allow_redirects=False`` and reports a 301/302 as an error, and this adapter does not
    follow either (following is the Session's job, which exchangelib turns off).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _VETTED_POOLS

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = ca_bundle_path()
        if select_proxy(str(request.url), kwargs.get("proxies")):
            _check_proxied_target(str(request.url))
        return super().send(request, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        bundle = ca_bundle_path()
        super().cert_verify(conn, url, bundle, cert)
        context = getattr(conn, "conn_kw", {}).get("ssl_context")
        if context is not None and context is _contexts.get(bundle):
            conn.ca_certs = None  # the pool's context holds this bundle already (below)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """requests hands urllib3 the bundle's path, which it loads again for every new
        connection (16 ms of CPU per sync run, docs/performance.md); hand it the bundle loaded
        once per process instead: the same certificates, verified the same way."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if isinstance(verify, str) and pool_kwargs.get("ca_certs") == verify:
            del pool_kwargs["ca_certs"]
            pool_kwargs["ssl_context"] = _verifying_context(verify)
        return host_params, pool_kwargs


_contexts: dict[str, ssl.SSLContext] = {}


def _verifying_context(bundle: str) -> ssl.SSLContext:
    """A client context trusting exactly ``bundle`` (certificates and host names checked),
    built once per process and bundle file (its name changes with its content)."""
    with _lock:
        context = _contexts.get(bundle)
        if context is None:
            context = ssl.create_default_context(cafile=bundle)
            _contexts[bundle] = context
        return context


def _check_proxied_target(url: str) -> None:
    """Through a proxy, check the name as this machine resolves it (the proxy resolves it
    again on its own; a name this machine cannot resolve is left to the proxy)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses.vetted_addresses(parts.hostname or "", port)
    except socket.gaierror:
        return
