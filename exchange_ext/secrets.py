"""``Secret``: a string that never shows itself, and the model field that encrypts it.

A :class:`Secret` prints as ``'********'`` in ``str``, ``repr``, f-strings, logs, tracebacks
and templates; code that really needs the value calls :meth:`Secret.reveal`. The database
column holds only the Fernet token. Every value a Secret holds is also given to
:func:`psa.log_redaction.remember_secret`, so that no log line shows it even when a library
logs it (a request body, a header, an error message).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from exchange_ext import crypto
from psa.log_redaction import remember_secret

MASK = "********"


class Secret:
    """A non-empty secret value. Compare with ``==`` against another Secret or a str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember_secret(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return isinstance(other, str) and self._value == other

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickle plaintext (e.g. into a task queue)
        raise TypeError("Secret values cannot be pickled")


def reveal(value: Secret | str | None) -> str:
    """The plaintext of a stored :class:`Secret`, of a str an unsaved form put on a model
    instance, or ``""`` for no secret.

    Raises :class:`~exchange_ext.crypto.SecretDecryptionError` for an
    :class:`UndecryptableSecret` (the caller decides what that means to its user).
    """
    if isinstance(value, Secret):
        return value.reveal()
    return value or ""


class UndecryptableSecret(Secret):
    """A stored secret no configured key can open: present, but unusable until re-entered.

    It keeps the stored token so that saving the row writes it back unchanged (restoring the
    old key later recovers it) instead of erasing or failing.
    """

    __slots__ = ("token",)

    def __init__(self, token: str = "") -> None:
        super().__init__("")
        self.token = token

    def reveal(self) -> str:
        raise crypto.SecretDecryptionError(
            "a stored secret cannot be decrypted with the configured keys; enter it again"
        )

    def __bool__(self) -> bool:
        return True  # a secret is stored, even if it cannot be read


class EncryptedSecretField(models.TextField):
    """Stores a :class:`Secret` encrypted; blank means "no secret" and reads back as None."""

    description = "A secret encrypted with the installation's Fernet keys"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret | None:
        if not value:
            return None
        try:
            return Secret(crypto.decrypt(value))
        except crypto.SecretDecryptionError:
            # Loading the row must not fail (the admin needs the form to re-enter the secret).
            return UndecryptableSecret(value)

    def to_python(self, value: Any) -> Secret | None:
        if isinstance(value, Secret):  # first: an UndecryptableSecret compares equal to ""
            return value
        if value is None or value == "":
            return None
        return Secret(str(value))

    def get_prep_value(self, value: Any) -> str:
        secret = self.to_python(value)
        if isinstance(secret, UndecryptableSecret):
            return secret.token  # written back as stored, never re-encrypted nor erased
        return crypto.encrypt(secret.reveal()) if secret else ""

    def value_to_string(self, obj: models.Model) -> str:
        return ""  # dumpdata and serializers never see a secret

    def formfield(self, **kwargs: Any) -> Any:
        from django import forms

        defaults = {"widget": forms.PasswordInput(render_value=False), "required": False}
        return super().formfield(**{**defaults, **kwargs})
