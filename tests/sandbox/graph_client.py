"""Helpers for the Graph sandbox tests: a tiny Graph client over ``requests`` with the sandbox CA.

Not fixtures (the EWS conftest stays as it is): each test module builds what it needs from
``graph_session``/``GraphClient``; ``control_session`` for the sandbox's control API.
"""

from __future__ import annotations

from typing import Any

import requests

from exchange_ext.sandbox.server import SandboxHandle

TENANT_ID = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
TENANT_DOMAIN = "northwind.example"
APP_ID = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6"
APP_SECRET = "sandbox-graph-secret"
SCOPED_APP_ID = "1a7b4f3e-2c5d-4e6f-9a01-b2c3d4e5f607"
SCOPED_APP_SECRET = "sandbox-graph-scoped"
NOPERM_APP_ID = "2b8c5a4f-3d6e-4f70-8b12-c3d4e5f60718"
NOPERM_APP_SECRET = "sandbox-graph-noperm"
SCOPE = "https://graph.microsoft.com/.default"
PSA_SET = "c11ff724-aa03-4555-9952-8fa248a11c3e"
TAG_ID = f"String {{{PSA_SET}}} Name PsaItemKey"


def graph_session(handle: SandboxHandle) -> requests.Session:
    session = requests.Session()
    # Without this, REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment override .verify.
    session.trust_env = False
    session.verify = str(handle.ca_file)
    return session


def control_session(handle: SandboxHandle) -> requests.Session:
    """A session for the control API: the sandbox CA and its control token."""
    session = graph_session(handle)
    session.headers.update(handle.control_headers)
    return session


def request_token(
    handle: SandboxHandle,
    client_id: str = APP_ID,
    secret: str = APP_SECRET,
    tenant: str = TENANT_ID,
    **extra: str,
) -> requests.Response:
    form = {"client_id": client_id, "grant_type": "client_credentials", "scope": SCOPE}
    if secret:
        form["client_secret"] = secret
    form.update(extra)
    return graph_session(handle).post(
        f"{handle.base_url}/{tenant}/oauth2/v2.0/token", data=form, timeout=10
    )


class GraphClient:
    """Bearer-authenticated calls below ``{base}/v1.0/``; returns ``requests.Response``."""

    def __init__(
        self, handle: SandboxHandle, client_id: str = APP_ID, secret: str = APP_SECRET
    ) -> None:
        self.handle = handle
        self.session = graph_session(handle)
        reply = request_token(handle, client_id, secret)
        assert reply.status_code == 200, reply.text
        self.token = reply.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.root = f"{handle.base_url}/v1.0"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.root}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def delta_round(self, link: str, **kwargs: Any) -> tuple[list[dict[str, Any]], str, int]:
        """Follow nextLinks to the deltaLink: ``(all entries, deltaLink, pages)``."""
        entries: list[dict[str, Any]] = []
        pages = 0
        while True:
            reply = self.get(link, **kwargs)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            entries += body["value"]
            pages += 1
            if "@odata.deltaLink" in body:
                return entries, body["@odata.deltaLink"], pages
            link = body["@odata.nextLink"]
            assert pages < 1000


def event_body(subject: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
    }
    body.update(extra)
    return body
