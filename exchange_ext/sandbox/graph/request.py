"""One Graph request as the handlers see it, its response, and the OData options they share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from . import json_items
from .errors import GraphError, bad_request

if TYPE_CHECKING:
    from exchange_ext.sandbox.server import Sandbox

    from .state import GraphState

DEFAULT_TOP = 10  # Outlook's default page size for events, calendarView and contacts
MAX_TOP = 1000
_PREFER_ITEM = re.compile(r'\s*([A-Za-z][\w.\-]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;\s]*))?')
_EXPAND_FILTER = re.compile(
    r"^singleValueExtendedProperties(?:\(\s*\$filter\s*=\s*id\s+eq\s+'((?:[^']|'')*)'\s*\))?$",
    re.IGNORECASE,
)


@dataclass
class GraphResponse:
    """A handler's answer: status, JSON body (None for no body) and extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GraphRequest:
    """An authenticated Graph call: ``mailbox`` is the resolved user's address (lower-case).

    ``path`` is the request path below ``/v1.0/`` as the client sent it (used for links);
    ``applied`` collects the preferences echoed in ``Preference-Applied``.
    """

    sandbox: Sandbox
    method: str
    path: str
    segments: list[str]
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any
    base: str
    claims: dict[str, Any]
    mailbox: str = ""
    applied: list[str] = field(default_factory=list)

    @property
    def graph(self) -> GraphState:
        return self.sandbox.graph  # type: ignore[attr-defined]

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def prefer(self) -> dict[str, str]:
        """``Prefer`` header(s) as name → value (quotes removed), names as sent."""
        raw = getter_all(self.headers, "Prefer")
        out: dict[str, str] = {}
        for header in raw:
            for part in header.split(","):
                match = _PREFER_ITEM.match(part)
                if match and match.group(1):
                    value = match.group(2) or ""
                    out[match.group(1)] = value[1:-1] if value.startswith('"') else value
        return out

    def render_options(self) -> json_items.RenderOptions:
        """Time zone, body type, ``$expand`` and ``$select`` for rendering items."""
        prefer = {k.lower(): v for k, v in self.prefer().items()}
        tz_label = "UTC"
        tz = ZoneInfo("UTC")
        if prefer.get("outlook.timezone"):
            tz_label = prefer["outlook.timezone"]
            tz = json_items.zone(tz_label)
            self.apply(f'outlook.timezone="{tz_label}"')
        body_type = "html"
        if prefer.get("outlook.body-content-type", "").lower() in ("text", "html"):
            body_type = prefer["outlook.body-content-type"].lower()
            self.apply(f'outlook.body-content-type="{body_type}"')
        if "idtype" in prefer:
            # Store ids never change within a mailbox, so they serve as immutable ids.
            # https://learn.microsoft.com/graph/outlook-immutable-id
            self.apply(f'IdType="{prefer["idtype"]}"')
        return json_items.RenderOptions(tz, tz_label, body_type, self.expand(), self.select())

    def apply(self, preference: str) -> None:
        if preference not in self.applied:
            self.applied.append(preference)

    def expand(self) -> str | None:
        """``$expand=singleValueExtendedProperties($filter=id eq '…')`` → store key / ``*``."""
        raw = self.query.get("$expand")
        if raw is None:
            return None
        match = _EXPAND_FILTER.match(raw.strip())
        if match is None:
            raise bad_request(
                "The sandbox supports $expand=singleValueExtendedProperties($filter=id eq '...') "
                f"only, not {raw!r}."
            )
        prop_id = match.group(1)
        return "*" if prop_id is None else json_items.ext_key(prop_id.replace("''", "'"))

    def select(self) -> frozenset[str] | None:
        raw = self.query.get("$select")
        return None if raw is None else frozenset(s.strip() for s in raw.split(",") if s.strip())

    def page_size(self) -> int:
        prefer = {k.lower(): v for k, v in self.prefer().items()}
        size = prefer.get("odata.maxpagesize")
        if size and size.isdigit() and int(size) > 0:
            self.apply(f"odata.maxpagesize={int(size)}")
            return min(int(size), MAX_TOP)
        return DEFAULT_TOP

    def int_param(self, name: str, default: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise bad_request(f"Invalid value '{raw}' for query option {name}.")
        return min(int(raw), high)

    def link(self, **params: str) -> str:
        """An absolute link to this request's path with the given query parameters."""
        query = urlencode(params, safe="$:'()", quote_via=quote)
        return f"{self.base}/v1.0/{self.path}?{query}"

    def context(self, suffix: str) -> str:
        return f"{self.base}/v1.0/$metadata#{suffix}"

    def json_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise bad_request("The request body must be a JSON object.")
        return self.body


def getter_all(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of a header (``http.client.HTTPMessage`` or a plain dict)."""
    get_all = getattr(headers, "get_all", None)
    if get_all is not None:
        return list(get_all(name) or [])
    for key, value in headers.items():
        if key.lower() == name.lower():
            return [value]
    return []


def if_match(request: GraphRequest, changekey: str) -> None:
    """412 when ``If-Match`` names another version than ``changekey`` (``*`` matches any)."""
    # https://learn.microsoft.com/graph/api/event-update ; Outlook answers a stale change key
    # with 412 ErrorIrresolvableConflict.
    given = request.header("If-Match")
    if not given or given.strip() == "*":
        return
    tags = [t.strip() for t in given.split(",")]
    for tag in tags:
        value = tag[2:] if tag.startswith("W/") else tag
        if value.strip('"') == changekey:
            return
    raise GraphError(
        412, "ErrorIrresolvableConflict",
        "The send or update operation could not be performed because the change key passed in "
        "the request does not match the current change key for the item.",
    )  # fmt: skip
