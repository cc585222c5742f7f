"""Graph item ids: the same item as EWS sees it, under another name.

Exchange names one item differently per protocol: an EWS ``ItemId`` is not a Graph event id
(Graph converts between them with ``translateExchangeIds``,
https://learn.microsoft.com/graph/api/user-translateexchangeids). A client that switches
protocols cannot reuse the ids it stored; it must find its items again (by a tag, by the
iCalendar UID). So the sandbox gives every event and contact a Graph id of its own: a
deterministic, reversible transform of the store id (stable for the item's life, so it also
serves for ``Prefer: IdType="ImmutableId"``), and maps it back on every request. An EWS id sent
to Graph is malformed there, as on a real server (400 ``ErrorInvalidIdMalformed``).
"""

from __future__ import annotations

import base64
import binascii

from .errors import GraphError

# Graph's immutable ids start like this; the rest is ours.
_PREFIX = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"
_MARK = b"sandbox:"


def graph_id(store_id: str) -> str:
    """The Graph id of the item (or occurrence) with this store (EWS) id."""
    encoded = base64.urlsafe_b64encode(_MARK + store_id.encode()).decode().rstrip("=")
    return _PREFIX + encoded


def store_id(value: str) -> str:
    """The store id behind a Graph id; 400 ``ErrorInvalidIdMalformed`` for anything else (an
    EWS id, say)."""
    if value.startswith(_PREFIX):
        encoded = value[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if raw.startswith(_MARK):
            try:
                return raw[len(_MARK) :].decode()
            except UnicodeDecodeError:
                pass
    raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
