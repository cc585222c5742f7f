"""Errors as Microsoft Graph and Entra ID render them.

Graph: ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` — https://learn.microsoft.com/graph/errors
Entra ID (token endpoint): ``{"error", "error_description", "error_codes", "timestamp",
"trace_id", "correlation_id", "error_uri"}`` —
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#error-response
"""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """A Graph request failing with ``status`` and error ``code``; rendered by ``routes``.

    ``headers`` are added to the response (e.g. ``Retry-After`` on 429, ``Location`` on 410).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self, request_id: str, client_request_id: str, date: str) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    """400 for input the client must fix (also used for unsupported OData clauses)."""
    return GraphError(400, code, message)


def item_not_found() -> GraphError:
    # The text Outlook resources return for a missing or foreign item id.
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def access_denied() -> GraphError:
    # A token without the needed application permission (role).
    message = "Access is denied. Check credentials and try again."
    return GraphError(403, "ErrorAccessDenied", message)


def scope_denied() -> GraphError:
    # A mailbox outside the app's RBAC for Applications scope / ApplicationAccessPolicy:
    # https://learn.microsoft.com/graph/auth-limit-mailbox-access
    return GraphError(
        403,
        "ErrorAccessDenied",
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
        "AccessPolicy settings.",
    )


class EntraError(Exception):
    """A token endpoint failure: OAuth ``error``, AADSTS code number and description."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self, trace_id: str, correlation_id: str, timestamp: str) -> dict[str, Any]:
        # Entra appends trace/correlation ids and the timestamp to the description.
        text = (
            f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
        )
        return {
            "error": self.error,
            "error_description": text,
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }
