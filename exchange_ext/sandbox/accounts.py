"""Sandbox accounts: HTTP Basic credentials, the mailbox each account owns, impersonation rights.

An account is what a client logs in as; a mailbox is what it reads and writes. A service account
with the ``ApplicationImpersonation`` right may act on any mailbox through the
``ExchangeImpersonation`` SOAP header; every other account works on its own mailbox (and whatever
folders the operations let it reach).
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/impersonation-and-ews-in-exchange

Login names are accepted in the three forms Windows accepts them: ``DOMAIN\\user``,
``user@domain`` (UPN, or the account's own SMTP address) and plain ``user``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Account:
    """One login. ``password_hash`` is a salted SHA-256: a test double, not a vault."""

    login: str
    mailbox: str
    impersonation: bool = False
    domain: str = ""
    display_name: str = ""
    salt: bytes = field(default_factory=lambda: os.urandom(16), repr=False)
    password_hash: bytes = field(default=b"", repr=False)

    def set_password(self, password: str) -> None:
        self.password_hash = _hash(self.salt, password)

    def check_password(self, password: str) -> bool:
        return hmac.compare_digest(self.password_hash, _hash(self.salt, password))

    def matches_login(self, given: str) -> bool:
        """True when ``given`` names this account in any accepted form (case-insensitive)."""
        given = given.strip().lower()
        login, domain = self.login.lower(), self.domain.lower()
        if "\\" in given:
            dom, _, user = given.partition("\\")
            return user == login and (not domain or dom == domain)
        if "@" in given:
            if given == self.mailbox.lower():
                return True
            user, _, suffix = given.partition("@")
            return user == login and (not domain or suffix.split(".")[0] == domain)
        return given == login

    def to_public(self) -> dict[str, Any]:
        """The account as the control API shows it (never the password)."""
        return {
            "login": self.login,
            "mailbox": self.mailbox,
            "impersonation": self.impersonation,
            "domain": self.domain,
            "display_name": self.display_name,
        }


def _hash(salt: bytes, password: str) -> bytes:
    return hashlib.sha256(salt + password.encode("utf-8")).digest()


def account_from_config(entry: dict[str, Any], default_domain: str = "") -> Account:
    """Build an Account from one config/control-API entry; ValueError on bad input.

    Keys: ``login`` and ``password`` (required), ``mailbox`` (SMTP address the account owns),
    ``impersonation`` (bool), ``domain``, ``display_name``.
    """
    if not isinstance(entry, dict):
        raise ValueError("an account must be a JSON object")
    login = entry.get("login")
    password = entry.get("password")
    mailbox = entry.get("mailbox") or ""
    if not isinstance(login, str) or not login.strip() or any(c in login for c in "\\@:"):
        raise ValueError("login must be a plain user name (no domain, '@' or ':')")
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    if not isinstance(mailbox, str) or (mailbox and "@" not in mailbox):
        raise ValueError("mailbox must be an SMTP address")
    impersonation = entry.get("impersonation", False)
    if not isinstance(impersonation, bool):
        raise ValueError("impersonation must be true or false")
    account = Account(
        login=login.strip(),
        mailbox=mailbox.strip().lower(),
        impersonation=impersonation,
        domain=str(entry.get("domain", default_domain) or ""),
        display_name=str(entry.get("display_name", "") or ""),
    )
    account.set_password(password)
    return account


class AccountRegistry:
    """Thread-safe set of accounts, keyed by login name (case-insensitive)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}

    def add(self, account: Account) -> None:
        """Add or replace the account with this login."""
        with self._lock:
            self._accounts[account.login.lower()] = account

    def clear(self) -> None:
        with self._lock:
            self._accounts.clear()

    def all(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def authenticate(self, authorization: str | None) -> Account | None:
        """Check an HTTP ``Authorization: Basic …`` header; the account, or None when refused."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return None
        given, password = credentials
        for account in self.all():
            if account.matches_login(given):
                return account if account.check_password(password) else None
        return None


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from a Basic Authorization header, or None if absent or malformed.

    RFC 7617: base64 of ``user:password``; requests encodes it as latin-1, so do we.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
