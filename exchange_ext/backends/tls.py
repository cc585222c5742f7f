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
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import certifi
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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


class TrustedCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies every connection against :func:`ca_bundle_path`, whatever the caller asked.

    ``send`` passes the bundle as ``verify`` so the connection pool is keyed by it (requests'
    shared default SSL context is never touched); ``cert_verify`` repeats it for any path that
    reaches it with another value. Redirects are never followed: exchangelib posts with
    ``allow_redirects=False`` and reports a 301/302 as an error, and this adapter does not
    follow either (following is the Session's job, which exchangelib turns off).
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = ca_bundle_path()
        return super().send(request, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, ca_bundle_path(), cert)
