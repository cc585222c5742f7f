"""Secrets at rest: MultiFernet over the keys in ``EXCHANGE_SECRET_KEYS``.

``EXCHANGE_SECRET_KEYS`` holds comma-separated Fernet keys, newest first: the first encrypts,
every key decrypts, so a new key can be prepended and ``exchange_rotate_keys`` re-encrypts the
stored secrets under it. Without the variable, development (``DEBUG``) generates a key file under
``var/``; production refuses to start (:func:`check_keys_configured`, called from the app's
``ready()``).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENV_VAR = "EXCHANGE_SECRET_KEYS"


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key (never shows the token)."""


def _development_key_file() -> Path:
    return Path(settings.VAR_DIR) / "exchange_secret.key"


def configured_keys() -> list[bytes]:
    """The Fernet keys, newest first. Raises ImproperlyConfigured when none are available."""
    raw = os.environ.get(ENV_VAR, "")
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    if keys:
        return keys
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            f"{ENV_VAR} must be set in production (comma-separated Fernet keys, newest first). "
            'Generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        )
    return [_read_or_create_development_key()]


def _read_or_create_development_key() -> bytes:
    path = _development_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


@cache
def _multifernet(keys: tuple[bytes, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{ENV_VAR} contains a value that is not a Fernet key (32 url-safe base64 bytes)"
        ) from None


def cipher() -> MultiFernet:
    """The MultiFernet for the keys configured right now (read at call time)."""
    return _multifernet(tuple(configured_keys()))


def encrypt(plaintext: str) -> str:
    return cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "a stored secret cannot be decrypted with the configured keys "
            f"(was {ENV_VAR} changed without keeping the old key?)"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` under the newest key (MultiFernet.rotate)."""
    try:
        return cipher().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("a stored secret cannot be decrypted for rotation") from None


def check_keys_configured() -> None:
    """Fail fast at startup when production has no usable key."""
    cipher()
