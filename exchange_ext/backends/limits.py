"""How much of a response the backends read: size on the wire, size decoded, nesting depth.

SPEC §8: Exchange responses are "bounded in size and depth". A server (or anything between
it and us) could otherwise make a worker read without end, or send a *compression bomb* — a
small gzip body that inflates to gigabytes — or a document nested so deeply that parsing it
exhausts the stack. The limits:

- :data:`MAX_WIRE_BYTES` (64 MiB): bytes read off the connection. A ``Content-Length`` above
  it is refused before anything is read.
- :data:`MAX_DECODED_BYTES` (64 MiB): bytes after gzip/deflate decoding. The body is decoded
  in :data:`READ_CHUNK` pieces (urllib3 bounds each piece's inflation), and reading stops at
  the first piece past the limit: at most ``MAX_DECODED_BYTES + READ_CHUNK`` decoded bytes are
  ever held, whatever the body would inflate to.
- :data:`MAX_XML_DEPTH` (256): element nesting in an EWS response (checked by
  :func:`exchange_ext.backends.ews.guard.check_envelope`). JSON (Graph) nested past Python's
  recursion limit is refused the same way.

Why these numbers: the largest legitimate answers are GetItem batches of 100 items with their
bodies (a few MB; a long HTML body is a few hundred KB) and SyncFolderItems pages of 512
changes; 64 MiB is ten times a heavy batch and still a bounded cost for one worker (the
parsed tree of a 64 MiB document is a few hundred MB). EWS nests some 15 levels deep (SOAP
envelope, response messages, items, properties; bodies are text, not elements); 256 is
libxml2's own default ceiling. Everything past a limit is a :class:`ResponseTooLarge`: the
call fails whole, nothing is built from the response, and the next run retries.

Where: :class:`BoundedBodyAdapter` reads every response body as it is built, before requests
or a library (exchangelib, msal) touches ``response.content`` — exchangelib's own reading
would otherwise inflate the whole body into memory before any of our checks run. The EWS
transport adapter (:class:`~exchange_ext.backends.tls.TrustedCAAdapter`) and the Graph
session (:class:`~exchange_ext.backends.graph.http.TimeoutSession`) both use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from exchange_ext.backends.base import ResponseTooLarge

MIB = 1024 * 1024
MAX_WIRE_BYTES = 64 * MIB
MAX_DECODED_BYTES = 64 * MIB
MAX_XML_DEPTH = 256
READ_CHUNK = 64 * 1024


def _mib(count: int) -> str:
    return f"{count / MIB:.1f} MiB"


def _wire_bytes(response: requests.Response) -> int:
    tell = getattr(response.raw, "tell", None)
    try:
        return int(tell()) if callable(tell) else 0
    except (TypeError, ValueError, OSError):
        return 0


def _host(response: requests.Response) -> str:
    return urlsplit(response.url or "").netloc or "the server"


def refuse_declared_length(response: requests.Response) -> None:
    """Raise :class:`ResponseTooLarge` when ``Content-Length`` announces more than the limit."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > MAX_WIRE_BYTES:
        response.close()
        raise ResponseTooLarge(
            f"{_host(response)} announced a response of {_mib(int(declared))}; the limit is "
            f"{_mib(MAX_WIRE_BYTES)}, so none of it was read"
        )


def read_body(response: requests.Response) -> bytes:
    """Read ``response``'s body (decoded), stopping at the limits; the body is then cached on
    the response, so ``response.content`` returns it without reading again.

    Raises :class:`ResponseTooLarge` (and closes the connection) past a limit; read errors
    surface as requests' own exceptions (``ChunkedEncodingError``, ``ConnectionError`` …), as
    they would from ``response.content``.
    """
    refuse_declared_length(response)
    body = bytearray()
    # iter_content maps urllib3's read errors onto requests' exceptions, as .content does.
    for chunk in response.iter_content(READ_CHUNK):
        body += chunk
        wire = _wire_bytes(response)
        if len(body) > MAX_DECODED_BYTES or wire > MAX_WIRE_BYTES:
            response.close()  # never read the rest: the connection is dropped, not drained
            limit = (
                f"{_mib(MAX_WIRE_BYTES)} received"
                if wire > MAX_WIRE_BYTES
                else f"{_mib(MAX_DECODED_BYTES)} decoded"
            )
            encoding = response.headers.get("Content-Encoding") or "no"
            raise ResponseTooLarge(
                f"the response from {_host(response)} passed the limit of {limit} "
                f"({encoding} encoding; reading stopped after {_mib(len(body))} decoded from "
                f"{_mib(wire)} received)",
                read_bytes=len(body),
            )
    content = bytes(body)
    response._content = content
    response._content_consumed = True
    return content


def check_decoded_size(content: bytes, source: str) -> None:
    """Raise :class:`ResponseTooLarge` for a body past :data:`MAX_DECODED_BYTES` (a second
    line of defence where a body may have been read by other means)."""
    if len(content) > MAX_DECODED_BYTES:
        raise ResponseTooLarge(
            f"the response from {source} is {_mib(len(content))}; the limit is "
            f"{_mib(MAX_DECODED_BYTES)}",
            read_bytes=len(content),
        )


def bound_stream(response: requests.Response) -> None:
    """Let ``response`` be read as a stream, within the same limits over its whole length: its
    ``iter_content`` raises :class:`ResponseTooLarge` (and closes the connection) past them."""
    refuse_declared_length(response)
    unbounded = response.iter_content

    def iter_content(chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
        decoded = 0
        for chunk in unbounded(chunk_size, decode_unicode):
            decoded += len(chunk)
            if decoded > MAX_DECODED_BYTES or _wire_bytes(response) > MAX_WIRE_BYTES:
                response.close()
                raise ResponseTooLarge(
                    f"the streamed response from {_host(response)} passed "
                    f"{_mib(MAX_DECODED_BYTES)}",
                    read_bytes=decoded,
                )
            yield chunk

    response.iter_content = iter_content  # type: ignore[method-assign]


class BoundedBodyAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that reads each response body within the limits as the response is
    built, so no caller can read more. A request sent with ``stream=True`` (only EWS
    GetStreamingEvents asks for it: a connection held open for minutes, its documents read as
    they arrive) gets a bounded stream instead (:func:`bound_stream`)."""

    _sending = threading.local()  # the stream flag of the request this thread is sending

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any) -> Any:
        self._sending.stream = stream
        try:
            return super().send(request, stream=stream, **kwargs)
        finally:
            self._sending.stream = False

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        if getattr(self._sending, "stream", False):
            bound_stream(response)
        elif req.method != "HEAD":
            read_body(response)
        return response
