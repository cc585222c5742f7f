"""Responses are bounded in size and depth (SPEC §8; exchange_ext/backends/limits.py): on the
wire, once decoded (a gzip bomb stops inflating at the limit) and in XML depth; and the
sandbox's hostile bodies are what they say they are."""

from __future__ import annotations

import gzip
import io
import json
import os

import pytest
import requests
from lxml import etree
from urllib3 import HTTPResponse

from exchange_ext.backends import limits
from exchange_ext.backends.base import ResponseTooLarge, Unavailable
from exchange_ext.backends.ews.guard import IncompleteResponse, check_envelope
from exchange_ext.backends.limits import (
    MAX_DECODED_BYTES,
    MAX_XML_DEPTH,
    MIB,
    READ_CHUNK,
    BoundedBodyAdapter,
)
from exchange_ext.sandbox import faults
from exchange_ext.sandbox.faults import deep_document, gzip_bomb

URL = "https://mail.example.test/EWS/Exchange.asmx"


def received(body: bytes, **headers: str) -> tuple[requests.Response, HTTPResponse]:
    """``body`` as the adapter builds a response from the connection (nothing read yet)."""
    raw = HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=200, preload_content=False,
        decode_content=False,
    )  # fmt: skip
    request = requests.Request("POST", URL, data=b"<x/>").prepare()
    return BoundedBodyAdapter().build_response(request, raw), raw


def envelope(inner: bytes) -> bytes:
    return faults.SOAP_ENVELOPE_START + inner + faults.SOAP_ENVELOPE_END


def test_a_gzip_bomb_stops_inflating_at_the_decoded_limit() -> None:
    bomb = gzip_bomb(envelope(b"<x/>"), inflated_mib=1024)  # 1 GiB once inflated
    assert len(bomb) < 2 * MIB
    with pytest.raises(ResponseTooLarge) as caught:
        received(bomb, **{"Content-Encoding": "gzip", "Content-Length": str(len(bomb))})
    error = caught.value
    assert isinstance(error, Unavailable) and not error.outage and not error.permanent
    # The counter: what was held when reading stopped, never the gigabyte.
    assert MAX_DECODED_BYTES < error.read_bytes <= MAX_DECODED_BYTES + READ_CHUNK
    assert "the limit of 64.0 MiB decoded (gzip encoding; reading stopped after 64.1 MiB" in str(
        error
    )


def test_a_body_announced_past_the_wire_limit_is_refused_before_reading_any_of_it() -> None:
    with pytest.raises(ResponseTooLarge, match=r"announced a response of 65\.0 MiB") as caught:
        received(b"<x/>", **{"Content-Length": str(65 * MIB)})
    assert caught.value.read_bytes == 0


def test_the_wire_limit_holds_for_a_body_without_a_length(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(limits, "MAX_WIRE_BYTES", 1 * MIB)
    noise = gzip.compress(os.urandom(3 * MIB))  # incompressible: more on the wire than decoded
    with pytest.raises(ResponseTooLarge, match=r"the limit of 1\.0 MiB received") as caught:
        received(noise, **{"Content-Encoding": "gzip"})
    assert caught.value.read_bytes <= 1 * MIB + READ_CHUNK


def test_a_large_legitimate_response_is_read_whole_and_once() -> None:
    items = b"".join(
        b"<CalendarItem><Body>" + b"long text " * 5000 + b"</Body></CalendarItem>"
        for _ in range(100)
    )  # a GetItem of 100 items with bodies: ~5 MB
    body = envelope(items)
    compressed = gzip.compress(body)
    response, raw = received(compressed, **{"Content-Encoding": "gzip"})
    assert response.content == body
    assert raw.tell() == len(compressed)  # everything read off the wire, nothing left
    check_envelope(response.content)


@pytest.mark.parametrize("depth", [MAX_XML_DEPTH + 1, 3_000, 100_000])
def test_xml_nested_past_the_depth_limit_is_refused(depth: int) -> None:
    inner = depth - 2  # the envelope and its body are two levels
    document = envelope(b"<x>" * inner + b"</x>" * inner)
    with pytest.raises(ResponseTooLarge, match=f"deeper than {MAX_XML_DEPTH} levels"):
        check_envelope(document)


def test_xml_at_the_depth_limit_and_a_huge_text_node_are_accepted() -> None:
    inner = MAX_XML_DEPTH - 2
    check_envelope(envelope(b"<x>" * inner + b"</x>" * inner))
    check_envelope(envelope(b"<x>" + b"a" * (20 * MIB) + b"</x>"))  # past libxml2's 10 MB


def test_a_body_past_the_decoded_limit_is_refused_before_parsing() -> None:
    with pytest.raises(ResponseTooLarge, match=r"the limit is 64\.0 MiB"):
        check_envelope(b" " * (MAX_DECODED_BYTES + 1))
    with pytest.raises(IncompleteResponse):  # a broken body is still what it was
        check_envelope(envelope(b"<x>"))


def test_the_sandbox_bomb_is_a_valid_answer_for_whoever_reads_it_all() -> None:
    body = envelope(b"<Answer/>")
    inflated = gzip.decompress(gzip_bomb(body, inflated_mib=3))
    assert len(inflated) == len(body) + 3 * MIB
    assert inflated.replace(b" " * MIB, b"") == body
    etree.fromstring(inflated, etree.XMLParser(huge_tree=True))
    as_json = json.dumps({"value": [1]}).encode()
    assert json.loads(gzip.decompress(gzip_bomb(as_json, inflated_mib=1))) == {"value": [1]}


def test_the_sandbox_deep_document_nests_as_asked() -> None:
    assert deep_document(True, 3) == b'{"value":[[[]]]}'
    xml = deep_document(False, 5)
    assert xml == envelope(b"<x><x><x><x><x></x></x></x></x></x>")


def test_the_hostile_fault_kinds_are_validated_and_listed() -> None:
    rule = faults.rule_from_json(1, {"kind": "gzip_bomb", "operation": "GetItem"})
    assert rule.to_public()["inflated_mib"] == 1024
    rule = faults.rule_from_json(2, {"kind": "deep_document", "depth": 300})
    assert rule.to_public()["depth"] == 300
    with pytest.raises(ValueError, match="inflated_mib must be an integer between 1 and 16384"):
        faults.rule_from_json(3, {"kind": "gzip_bomb", "inflated_mib": 0})
    with pytest.raises(ValueError, match="depth must be an integer"):
        faults.rule_from_json(4, {"kind": "deep_document", "depth": "deep"})


def streamed(body: bytes, **headers: str) -> requests.Response:
    """``body`` as the adapter builds a response asked for with ``stream=True``."""
    raw = HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=200, preload_content=False,
        decode_content=False,
    )  # fmt: skip
    request = requests.Request("POST", URL, data=b"<x/>").prepare()
    adapter = BoundedBodyAdapter()
    adapter._sending.stream = True  # what send(..., stream=True) sets around build_response
    try:
        return adapter.build_response(request, raw)
    finally:
        adapter._sending.stream = False


def test_a_stream_is_not_read_ahead_and_its_documents_arrive_as_sent() -> None:
    documents = [envelope(b"<a/>"), envelope(b"<b/>")]
    response = streamed(b"".join(documents))

    assert not response._content_consumed  # nothing read when the response was built
    assert b"".join(response.iter_content(16)) == b"".join(documents)


def test_a_stream_past_the_decoded_limit_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_DECODED_BYTES", 1 * MIB)
    response = streamed(envelope(b"<x>" + b"y" * (2 * MIB) + b"</x>"))

    with pytest.raises(ResponseTooLarge, match="streamed response"):
        for _chunk in response.iter_content(READ_CHUNK):
            pass


def test_a_stream_announced_past_the_wire_limit_is_refused() -> None:
    with pytest.raises(ResponseTooLarge, match="announced"):
        streamed(b"<x/>", **{"Content-Length": str(65 * MIB)})
