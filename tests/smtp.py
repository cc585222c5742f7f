"""A real SMTP server on loopback (aiosmtpd) for the email tests, and what it received."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    """What the SMTP server received: the raw bytes as sent, and parsed."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.refuse: set[str] = set()  # recipient addresses answered "550 mailbox unavailable"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.original_content or envelope.content)
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for raw in self.raw]  # type: ignore[misc]

    def take(self) -> list[EmailMessage]:
        """The messages received since the last call."""
        received = self.messages
        self.raw.clear()
        return received

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def text(self, index: int) -> str:
        """The plain-text part of the ``index``-th message ("" without one)."""
        for part in self.messages[index].walk():
            if part.get_content_type() == "text/plain":
                return part.get_payload(decode=True).decode()
        return ""


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def smtp_inbox(settings: Any) -> Iterator[Inbox]:
    """Django's SMTP backend pointed at a server on a free loopback port, for the duration."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    settings.EMAIL_TIMEOUT = 5
    try:
        yield handler
    finally:
        controller.stop()
