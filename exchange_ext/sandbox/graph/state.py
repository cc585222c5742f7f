"""What the Graph side of one sandbox keeps besides the shared store (apps, signer, deltas)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from ..accounts import Account
from .delta import DeltaStore
from .errors import GraphError
from .tokens import EXCHANGE_RESOURCE, AppRegistry, TokenSigner


class GraphState:
    """Apps and tenants from the ``graph`` config section, the token signer, delta states.

    ``reset(config)`` returns to the config: apps and tenants reloaded, no delta states (old
    delta links answer 410 syncStateNotFound). The signing secret is kept, so access tokens a
    client holds stay valid across a reset as they would across a tenant-side change.
    ``transactions`` indexes Graph ``transactionId``s per mailbox (built lazily from the store).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.apps = AppRegistry()
        self.signer = TokenSigner()
        self.deltas = DeltaStore()
        self.without_mailbox: set[str] = set()
        self.transactions: dict[str, dict[str, str]] = {}
        self.reset(config)

    def reset(self, config: dict[str, Any]) -> None:
        graph = config.get("graph") or {}
        self.apps.load(graph)
        self.deltas.clear()
        self.transactions.clear()
        self.without_mailbox = {str(a).lower() for a in graph.get("users_without_mailbox", [])}

    def ews_caller(self, authorization: str | None, now: dt.datetime) -> Account | None:
        """The app an EWS ``Authorization: Bearer`` header names, as an account that
        impersonates (app-only EWS must), or None (EWS answers 401) unless the token is for
        Exchange Online and carries ``full_access_as_app``.
        https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-authenticate-an-ews-application-by-using-oauth
        """
        try:
            claims = self.signer.verify(authorization, now, EXCHANGE_RESOURCE)
        except GraphError:
            return None
        app = self.apps.app(str(claims.get("appid", "")))
        if app is None or "full_access_as_app" not in (claims.get("roles") or ()):
            return None
        return Account(
            login=app.client_id, mailbox="", impersonation=True, display_name=app.display_name
        )


def user_id(address: str) -> str:
    """The stable Graph user id (a GUID) of a mailbox address."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-user:{address.lower()}"))
