"""App-only OAuth on the sandbox's EWS (Office 365 without Graph): an app registration with
``full_access_as_app`` gets a token for ``https://outlook.office365.com/.default`` and
impersonates mailboxes with it; tokens are good for their own resource only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from exchangelib import (
    IMPERSONATION,
    OAUTH2,
    Account,
    Configuration,
    EWSTimeZone,
    FailFast,
    OAuth2Credentials,
)
from exchangelib.errors import UnauthorizedError

from exchange_ext.sandbox.graph.tokens import app_from_config, b64url_decode
from exchange_ext.sandbox.server import SandboxHandle
from tests.sandbox.conftest import PINNED_VERSION
from tests.sandbox.graph_client import (
    NOPERM_APP_ID,
    NOPERM_APP_SECRET,
    TENANT_ID,
    graph_session,
    request_token,
)

EWS_SCOPE = "https://outlook.office365.com/.default"
EWS_APP, EWS_SECRET = "3c9d6b5a-4e7f-4a81-9c23-d4e5f6071829", "sandbox-ews-app-secret"
TECH1 = "tech1@northwind.example"


class SandboxOAuth2Credentials(OAuth2Credentials):
    """Client credentials against the sandbox's token endpoint instead of Entra ID's."""

    def __init__(self, base_url: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"


@pytest.fixture
def ews_app(sandbox: SandboxHandle) -> str:
    sandbox.state.graph.apps.add_app(
        app_from_config(
            {"client_id": EWS_APP, "secrets": [EWS_SECRET],
             "permissions": ["full_access_as_app", "Calendars.ReadWrite"]},
            TENANT_ID,
        )
    )  # fmt: skip
    return EWS_APP


def app_account(handle: SandboxHandle, client_id: str, secret: str) -> Account:
    credentials = SandboxOAuth2Credentials(
        handle.base_url, client_id=client_id, client_secret=secret, tenant_id=TENANT_ID
    )
    config = Configuration(
        service_endpoint=handle.url, credentials=credentials, auth_type=OAUTH2,
        version=PINNED_VERSION, retry_policy=FailFast(),
    )  # fmt: skip
    return Account(
        TECH1, config=config, autodiscover=False, access_type=IMPERSONATION,
        default_timezone=EWSTimeZone("UTC"),
    )  # fmt: skip


def claims(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[1])))


def test_an_app_with_full_access_as_app_impersonates_a_mailbox_with_a_bearer_token(
    sandbox: SandboxHandle, ews_app: str
) -> None:
    account = app_account(sandbox, ews_app, EWS_SECRET)
    assert account.calendar.all().count() == 0
    [entry] = sandbox.state.requests.query("FindItem")["requests"]
    assert (entry["caller"], entry["mailbox"], entry["status"]) == (ews_app, TECH1, 200)
    [token] = sandbox.state.graph.signer.issued_tokens()
    assert claims(token)["aud"] == "https://outlook.office365.com"


def test_a_token_carries_the_permissions_of_its_own_resource_only(
    sandbox: SandboxHandle, ews_app: str
) -> None:
    for_ews = request_token(sandbox, ews_app, EWS_SECRET, scope=EWS_SCOPE).json()["access_token"]
    for_graph = request_token(sandbox, ews_app, EWS_SECRET).json()["access_token"]
    assert claims(for_ews)["roles"] == ["full_access_as_app"]
    assert claims(for_graph)["roles"] == ["Calendars.ReadWrite"]
    assert sandbox.state.graph.signer.issued_tokens() == [for_ews, for_graph]


def test_ews_refuses_a_graph_token_and_an_app_without_full_access_as_app(
    sandbox: SandboxHandle, ews_app: str
) -> None:
    graph_token = request_token(sandbox, ews_app, EWS_SECRET).json()["access_token"]
    no_permission = request_token(
        sandbox, NOPERM_APP_ID, NOPERM_APP_SECRET, scope=EWS_SCOPE
    ).json()["access_token"]
    session = graph_session(sandbox)
    for token in (graph_token, no_permission, "not-a-token"):
        reply = session.post(
            sandbox.url, data=b"<x/>", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert reply.status_code == 401
    with pytest.raises(UnauthorizedError):
        app_account(sandbox, NOPERM_APP_ID, NOPERM_APP_SECRET).calendar.all().count()


def test_graph_refuses_an_exchange_token(sandbox: SandboxHandle, ews_app: str) -> None:
    token = request_token(sandbox, ews_app, EWS_SECRET, scope=EWS_SCOPE).json()["access_token"]
    reply = graph_session(sandbox).get(
        f"{sandbox.base_url}/v1.0/users/{TECH1}/calendar",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert reply.status_code == 401
    assert reply.json()["error"]["message"] == "Access token validation failure. Invalid audience."
