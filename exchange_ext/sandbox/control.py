"""The JSON control API under ``/_sandbox/`` (loopback clients with the control token only).

==========  ==============================================================  ====================
Method      Path (below ``/_sandbox``)                                      What
==========  ==============================================================  ====================
GET         ``/``                                                           this index
POST        ``/reset``                                                      back to the config
GET, POST   ``/accounts``                                                   list / add accounts
GET, POST   ``/mailboxes``                                                  list / add mailboxes
GET, POST   ``/faults``; DELETE ``/faults`` or ``/faults/<id>``             fault rules
GET, DELETE ``/requests?operation=&mailbox=``                               request log, counters
GET, DELETE ``/outbox``                                                     would-be-sent mail
GET         ``/schema``                                                     validation report
GET, POST   ``/mailboxes/<address>/folders/<folder>/items``                 backdoor list/create
PATCH, DEL  ``/mailboxes/<address>/items/<item_id>``                        backdoor edit/delete
GET, POST   ``/clock`` (``{"offset_seconds": n}`` or ``{"now": iso}``)      sandbox clock
GET, POST   ``/graph/apps``                                                 Graph app registrations
GET, POST   ``/graph/tenants``                                              Entra ID tenants
DELETE      ``/graph/delta-tokens``                                         expire all delta tokens
GET, DELETE ``/graph/subscriptions``                                        list (with delivery
                                                                            log) / remove all
GET, PATCH  ``/graph/subscriptions/<id>`` (``{"paused": bool}``)            one / pause delivery
POST        ``/graph/subscriptions/<id>/lifecycle`` (``{"event": ...}``)    lifecycle notification
POST        ``/graph/subscriptions/<id>/expire``                            expire it now
GET         ``/streaming``                                                  EWS streaming: settings,
                                                                            subscriptions, streams
POST        ``/streaming/settings`` (``{"minute_seconds": 0.5, ...}``)      change settings
POST        ``/streaming/drop`` (``{"forget_subscriptions": bool}``)        break every stream off
==========  ==============================================================  ====================

Bad input gets a 4xx with ``{"error": "..."}``; nothing raised here ever reaches the client as
a traceback. Path segments are percent-decoded (item ids are base64 and may hold ``/``).

Who may call it (``refusal``, checked by the server before any handler; each failure is a 403):
a loopback client, addressing the sandbox as ``localhost``/``127.0.0.1``/``[::1]`` in ``Host``
(DNS rebinding), with no ``Origin`` but the sandbox's own and no cross-site ``Sec-Fetch-Site``
(a browser page), carrying the sandbox's control token in ``X-Sandbox-Token``. The token is
random per start (``new_token``); ``manage.py exchange_sandbox`` prints it and writes it beside
the CA (``write_token_file``, mode 0600). A web page can neither read that file nor add the
header to a cross-origin request without a CORS preflight, which the sandbox never grants.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .accounts import account_from_config
from .contract import EwsError

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

Result = tuple[int, Any]

TOKEN_HEADER = "X-Sandbox-Token"
TOKEN_FILE_NAME = "control-token"
# A fixed token (``EXCHANGE_SANDBOX_TOKEN``, ``start_sandbox(control_token=...)``): header-safe
# and long enough not to be guessed.
_TOKEN_FORM = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
_HOST_FORM = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?")
# Sec-Fetch-Site values a browser sends for a request the sandbox's own origin (or the user, by
# typing the URL) started; "same-site" is another port of localhost: refused like "cross-site".
_OWN_FETCH_SITES = ("same-origin", "none")


def new_token() -> str:
    """A fresh random control token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_token_form(token: str) -> str:
    """``token`` if it may serve as a fixed control token; ValueError otherwise."""
    if not isinstance(token, str) or not _TOKEN_FORM.fullmatch(token):
        raise ValueError(
            "a control token must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ + / = -"
        )
    return token


def default_token_file() -> Path:
    """``$PSA_VAR_DIR/sandbox/control-token``: beside the default CA, where the demo looks."""
    from .certificates import default_directory

    return default_directory() / TOKEN_FILE_NAME


def write_token_file(path: Path, token: str) -> Path:
    """Write ``token`` to ``path`` readable by this user only (0600; temp file + rename)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def remove_token_file(path: Path, token: str) -> None:
    """Delete the token file if it still holds ``token`` (a later sandbox may own it now)."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii").strip() == token:
            path.unlink()


def refusal(token: str, headers: Any, *, scheme: str, port: int) -> str | None:
    """Why this control request must be refused (403), or None to let it through.

    ``headers``: the request's headers (``.get``); ``scheme``/``port``: the sandbox's own, for
    its origin. The loopback check on the client address is the server's, before this.
    """
    host = headers.get("Host")
    if not host or not _is_local_host(host):
        return (
            f"the control API answers only requests addressed to localhost, 127.0.0.1 or [::1] "
            f"(Host: {host!r}); another name may be DNS rebinding"
        )
    origin = headers.get("Origin")
    if origin is not None and not _is_own_origin(origin, scheme, port):
        return (
            f"the control API refuses requests from web pages of other origins "
            f"(Origin: {origin!r}); use a client of your own, not a browser"
        )
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in _OWN_FETCH_SITES:
        return (
            f"the control API refuses browser requests from other sites "
            f"(Sec-Fetch-Site: {fetch_site!r})"
        )
    given = headers.get(TOKEN_HEADER)
    if not given:
        return (
            f"the control API needs the sandbox's control token in the {TOKEN_HEADER} header "
            f"(printed by manage.py exchange_sandbox at start and saved beside its CA file as "
            f"{TOKEN_FILE_NAME})"
        )
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
        return f"wrong control token in {TOKEN_HEADER} (each start of the sandbox makes a new one)"
    return None


def _is_local_host(value: str) -> bool:
    """``value`` (a Host header or an origin's host[:port]) names the loopback interface."""
    match = _HOST_FORM.fullmatch(value.strip())
    if match is None:
        return False
    name = match["name"].lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if name.startswith("[") != (address.version == 6):
        return False  # IPv6 needs its brackets here, IPv4 must not have them
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _is_own_origin(origin: str, scheme: str, port: int) -> bool:
    """``origin`` (``scheme://host[:port]``) is the sandbox's own: its scheme, a local name, its
    port. ``null`` (a sandboxed frame, a file: page) is not."""
    parts = urlsplit(origin.strip())
    if parts.scheme != scheme or parts.path or parts.query or parts.username:
        return False
    if not _is_local_host(parts.netloc):
        return False
    try:
        given_port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return False
    return given_port == port


class BadRequest(ValueError):
    """Input the client must fix (400), or with ``status`` another 4xx."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def handle(sandbox: Sandbox, method: str, raw_path: str, body: bytes) -> Result:
    """Answer one control request: ``(HTTP status, JSON-able payload)``."""
    parts = urlsplit(raw_path)
    segments = [unquote(s) for s in parts.path.split("/")[2:] if s]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        route, args = _match(method, segments)
        data = _json_body(body) if method in ("POST", "PATCH", "PUT") else None
        return route(sandbox, data, query, *args)
    except BadRequest as exc:
        return exc.status, {"error": str(exc)}
    except EwsError as exc:
        status = 404 if "NotFound" in exc.code else 400
        return status, {"error": exc.message, "code": exc.code}
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    except KeyError as exc:
        return 404, {"error": f"not found: {exc}"}
    except Exception:
        log.exception("control API request %s %s failed", method, raw_path)
        return 500, {"error": "internal error in the sandbox (see its log)"}


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


# ---------------------------------------------------------------------------- handlers


def _index(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {
        "endpoints": [line.strip() for line in (__doc__ or "").splitlines() if "``/" in line],
        "server_version": sandbox.server_version,
        "schema": sandbox.validator.active,
    }


def _reset(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    sandbox.reset()
    sandbox.save()
    return 200, {"reset": True, "mailboxes": sandbox.mailbox_addresses()}


def _list_accounts(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {"accounts": [a.to_public() for a in sandbox.accounts.all()]}


def _add_account(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    entry = _object(data)
    account = account_from_config(entry, str(sandbox.config.get("domain", "")))
    sandbox.add_account(account, str(entry.get("display_name", "")))
    sandbox.save()
    return 201, account.to_public()


def _list_mailboxes(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {"mailboxes": sandbox.store.mailboxes()}


def _add_mailbox(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    entry = _object(data)
    address = entry.get("address")
    if not isinstance(address, str) or address.count("@") != 1 or " " in address:
        raise BadRequest("address must be an SMTP address")
    display_name = entry.get("display_name", "")
    if not isinstance(display_name, str):
        raise BadRequest("display_name must be a string")
    sandbox.add_mailbox(address, display_name)
    sandbox.save()
    return 201, {"address": address.lower(), "display_name": display_name}


def _list_faults(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {"faults": sandbox.faults.list()}


def _add_fault(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 201, sandbox.faults.add(_object(data)).to_public()


def _clear_faults(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    sandbox.faults.clear()
    return 200, {"faults": []}


def _remove_fault(sandbox: Sandbox, data: Any, query: dict[str, str], rule_id: str) -> Result:
    if not rule_id.isdigit() or not sandbox.faults.remove(int(rule_id)):
        raise BadRequest(f"no fault rule {rule_id}", 404)
    return 200, {"removed": int(rule_id)}


def _list_requests(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, sandbox.requests.query(query.get("operation"), query.get("mailbox"))


def _clear_requests(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    sandbox.requests.clear()
    return 200, {"requests": [], "counters": {}}


def _list_outbox(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {"messages": list(sandbox.outbox.messages)}


def _clear_outbox(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    sandbox.outbox.messages.clear()
    return 200, {"messages": []}


def _schema(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, sandbox.validator.report()


def _get_clock(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {
        "now": sandbox.now().isoformat(),
        "offset_seconds": sandbox.clock_offset.total_seconds(),
    }


def _set_clock(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    entry = _object(data)
    if "now" in entry:
        try:
            target = dt.datetime.fromisoformat(str(entry["now"]))
        except ValueError:
            raise BadRequest("now must be an ISO 8601 date-time with an offset") from None
        if target.tzinfo is None:
            raise BadRequest("now must carry a UTC offset")
        sandbox.clock_offset = target - dt.datetime.now(dt.UTC)
    elif isinstance(entry.get("offset_seconds"), int | float):
        sandbox.clock_offset = dt.timedelta(seconds=float(entry["offset_seconds"]))
    else:
        raise BadRequest("give now (ISO date-time) or offset_seconds (number)")
    return _get_clock(sandbox, None, query)


def _mailbox(sandbox: Sandbox, address: str) -> str:
    if not sandbox.store.has_mailbox(address):
        raise BadRequest(f"no mailbox {address}", 404)
    return address.lower()


def _backdoor_list(
    sandbox: Sandbox, data: Any, query: dict[str, str], address: str, folder: str
) -> Result:
    items = sandbox.store.backdoor_list(_mailbox(sandbox, address), folder)
    return 200, {"items": items}


def _backdoor_create(
    sandbox: Sandbox, data: Any, query: dict[str, str], address: str, folder: str
) -> Result:
    item = sandbox.store.backdoor_create(_mailbox(sandbox, address), folder, _object(data))
    sandbox.save()
    return 201, item


def _backdoor_update(
    sandbox: Sandbox, data: Any, query: dict[str, str], address: str, item_id: str
) -> Result:
    item = sandbox.store.backdoor_update(_mailbox(sandbox, address), item_id, _object(data))
    sandbox.save()
    return 200, item


def _backdoor_delete(
    sandbox: Sandbox, data: Any, query: dict[str, str], address: str, item_id: str
) -> Result:
    sandbox.store.backdoor_delete(_mailbox(sandbox, address), item_id)
    sandbox.save()
    return 200, {"deleted": item_id}


def _list_apps(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {"apps": [a.to_public() for a in sandbox.graph.apps.apps()]}


def _add_app(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """Register (or replace) an app; body as a ``graph.apps`` entry of the config file."""
    from .graph.tokens import app_from_config

    registry = sandbox.graph.apps
    app = app_from_config(_object(data), registry.default_tenant())
    registry.add_app(app)
    return 201, app.to_public()


def _list_tenants(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    return 200, {"tenants": sandbox.graph.apps.tenants()}


def _add_tenant(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    sandbox.graph.apps.add_tenant(_object(data))
    return 201, {"tenants": sandbox.graph.apps.tenants()}


def _expire_delta_tokens(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """Forget every Graph delta state: the next delta request gets 410 syncStateNotFound."""
    count = sandbox.graph.deltas.count()
    sandbox.graph.deltas.clear()
    return 200, {"expired": count}


def _subscription(sandbox: Sandbox, subscription_id: str) -> Any:
    sub = sandbox.graph_subscriptions.find(subscription_id)
    if sub is None:
        raise BadRequest(f"no Graph subscription {subscription_id} (deleted or expired)", 404)
    return sub


def _list_subscriptions(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """Every live subscription (any app) with its delivery log, and the whole delivery log
    (also the entries of subscriptions gone since)."""
    registry = sandbox.graph_subscriptions
    return 200, {
        "subscriptions": [registry.public(s) for s in registry.all()],
        "deliveries": registry.delivery.log(),
    }


def _clear_subscriptions(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """Remove every subscription silently (no lifecycle notification) and the delivery log."""
    sandbox.graph_subscriptions.clear()
    return 200, {"subscriptions": [], "deliveries": []}


def _get_subscription(
    sandbox: Sandbox, data: Any, query: dict[str, str], subscription_id: str
) -> Result:
    return 200, sandbox.graph_subscriptions.public(_subscription(sandbox, subscription_id))


def _pause_subscription(
    sandbox: Sandbox, data: Any, query: dict[str, str], subscription_id: str
) -> Result:
    """``{"paused": true}``: its notifications are lost (logged as such) until resumed."""
    entry = _object(data)
    if not isinstance(entry.get("paused"), bool) or set(entry) != {"paused"}:
        raise BadRequest('the body must be {"paused": true} or {"paused": false}')
    sub = _subscription(sandbox, subscription_id)
    sandbox.graph_subscriptions.set_paused(sub, entry["paused"])
    return 200, sandbox.graph_subscriptions.public(sub)


def _subscription_lifecycle(
    sandbox: Sandbox, data: Any, query: dict[str, str], subscription_id: str
) -> Result:
    """Send a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``,
    ``missed``) to the subscription's lifecycleNotificationUrl; 409 when it has none, as Graph
    sends lifecycle notifications nowhere else."""
    from .graph.subscriptions import LIFECYCLE_EVENTS

    event = _object(data).get("event")
    if event not in LIFECYCLE_EVENTS:
        raise BadRequest(f"event must be one of {', '.join(LIFECYCLE_EVENTS)}")
    sub = _subscription(sandbox, subscription_id)
    if sub.lifecycle_url is None:
        raise BadRequest(
            "this subscription has no lifecycleNotificationUrl: Graph sends lifecycle "
            "notifications only there, so there is nothing to send to",
            409,
        )
    notification = sandbox.graph_subscriptions.lifecycle(sub, event)
    return 202, {"queued": notification, "url": sub.lifecycle_url,
                 "removed": event == "subscriptionRemoved"}  # fmt: skip


def _expire_subscription(
    sandbox: Sandbox, data: Any, query: dict[str, str], subscription_id: str
) -> Result:
    """Expire a subscription now: it disappears, as at its expirationDateTime (no notice)."""
    sandbox.graph_subscriptions.expire(_subscription(sandbox, subscription_id))
    return 200, {"expired": subscription_id}


def _streaming_hub(sandbox: Sandbox) -> Any:
    if sandbox.streaming is None:
        raise BadRequest("this sandbox has no EWS streaming (a stand-in store)", 409)
    return sandbox.streaming


def _streaming(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """EWS streaming: its settings, live subscriptions and open streams."""
    return 200, _streaming_hub(sandbox).snapshot()


def _streaming_settings(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """Change streaming settings (``minute_seconds``, ``keepalive_minutes``,
    ``connection_limit``, ``subscription_idle_minutes``, ``max_subscriptions``)."""
    return 200, {"settings": _streaming_hub(sandbox).configure(_object(data))}


def _streaming_drop(sandbox: Sandbox, data: Any, query: dict[str, str]) -> Result:
    """Break every open stream off, as a server restart or a network drop does (the client
    sees a broken chunked answer); ``forget_subscriptions`` also loses every subscription, so
    the next GetStreamingEvents gets ErrorSubscriptionNotFound."""
    entry = _object(data)
    forget = entry.get("forget_subscriptions", False)
    if not isinstance(forget, bool) or set(entry) - {"forget_subscriptions"}:
        raise BadRequest('the body must be {} or {"forget_subscriptions": true|false}')
    return 200, _streaming_hub(sandbox).drop(forget=forget)


# ---------------------------------------------------------------------------- routing

# (pattern, {method: handler}); "*" in a pattern captures one path segment.
ROUTES: list[tuple[tuple[str, ...], dict[str, Callable[..., Result]]]] = [
    ((), {"GET": _index}),
    (("reset",), {"POST": _reset}),
    (("accounts",), {"GET": _list_accounts, "POST": _add_account}),
    (("mailboxes",), {"GET": _list_mailboxes, "POST": _add_mailbox}),
    (("faults",), {"GET": _list_faults, "POST": _add_fault, "DELETE": _clear_faults}),
    (("faults", "*"), {"DELETE": _remove_fault}),
    (("requests",), {"GET": _list_requests, "DELETE": _clear_requests}),
    (("outbox",), {"GET": _list_outbox, "DELETE": _clear_outbox}),
    (("schema",), {"GET": _schema}),
    (("clock",), {"GET": _get_clock, "POST": _set_clock}),
    (
        ("mailboxes", "*", "folders", "*", "items"),
        {"GET": _backdoor_list, "POST": _backdoor_create},
    ),
    (("mailboxes", "*", "items", "*"), {"PATCH": _backdoor_update, "DELETE": _backdoor_delete}),
    (("graph", "apps"), {"GET": _list_apps, "POST": _add_app}),
    (("graph", "tenants"), {"GET": _list_tenants, "POST": _add_tenant}),
    (("graph", "delta-tokens"), {"DELETE": _expire_delta_tokens}),
    (("graph", "subscriptions"), {"GET": _list_subscriptions, "DELETE": _clear_subscriptions}),
    (("graph", "subscriptions", "*"), {"GET": _get_subscription, "PATCH": _pause_subscription}),
    (("graph", "subscriptions", "*", "lifecycle"), {"POST": _subscription_lifecycle}),
    (("graph", "subscriptions", "*", "expire"), {"POST": _expire_subscription}),
    (("streaming",), {"GET": _streaming}),
    (("streaming", "settings"), {"POST": _streaming_settings}),
    (("streaming", "drop"), {"POST": _streaming_drop}),
]


def _match(method: str, segments: list[str]) -> tuple[Callable[..., Result], list[str]]:
    for pattern, handlers in ROUTES:
        if len(pattern) != len(segments):
            continue
        if all(p in ("*", s) for p, s in zip(pattern, segments, strict=True)):
            if method not in handlers:
                raise BadRequest(f"{method} is not allowed here", 405)
            args = [s for p, s in zip(pattern, segments, strict=True) if p == "*"]
            return handlers[method], args
    raise BadRequest("no such control endpoint; GET /_sandbox/ lists them", 404)
