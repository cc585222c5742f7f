"""``manage.py exchange_rotate_keys [--check]``: re-encrypt stored secrets under the newest key.

Procedure: prepend a new Fernet key to ``EXCHANGE_SECRET_KEYS`` (keep the old ones), run this
command, then the old keys may be removed. Every ``EncryptedSecretField`` of every installed
model is found generically. Tokens are read and written as raw column values (the field's
``from_db_value`` would decrypt, and its ``get_prep_value`` would encrypt the token again).
All or nothing: if any value cannot be decrypted with the configured keys, it is reported by
model, field and primary key, nothing is changed, and the command exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction

from exchange_ext import crypto
from exchange_ext.secrets import EncryptedSecretField


@dataclass
class _Column:
    model: type[models.Model]
    field: EncryptedSecretField
    rotated: list[tuple[Any, str]] = field(default_factory=list)  # (pk, new token)
    undecryptable: list[Any] = field(default_factory=list)  # pks

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.field.name}"


class Command(BaseCommand):
    help = "Re-encrypt every stored secret under the first key of EXCHANGE_SECRET_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="only report what would be re-encrypted"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            columns = [_rotate_column(column) for column in _secret_columns()]
            self._report(columns, check=options["check"])
            if any(column.undecryptable for column in columns):
                raise CommandError("some secrets cannot be decrypted; nothing was changed")
            if not options["check"]:
                for column in columns:
                    _write_column(column)
        if not options["check"]:
            total = sum(len(column.rotated) for column in columns)
            self.stdout.write(self.style.SUCCESS(f"re-encrypted {total} secret(s)"))

    def _report(self, columns: list[_Column], *, check: bool) -> None:
        verb = "would re-encrypt" if check else "re-encrypting"
        for column in columns:
            self.stdout.write(f"{column.label}: {verb} {len(column.rotated)}")
            for pk in column.undecryptable:
                self.stderr.write(f"{column.label} pk={pk}: cannot be decrypted with any key")


def _secret_columns() -> list[_Column]:
    return [
        _Column(model, model_field)
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
        for model_field in model._meta.concrete_fields
        if isinstance(model_field, EncryptedSecretField)
    ]


def _rotate_column(column: _Column) -> _Column:
    table, pk_column, quote = _table_names(column)
    secret_column = quote(column.field.column)
    with connection.cursor() as cursor:
        # Raw SQL: the tokens as stored, never through the field's decrypting from_db_value.
        # Only quoted identifiers are interpolated; values travel as parameters.
        cursor.execute(
            f"SELECT {pk_column}, {secret_column} FROM {table} "
            f"WHERE {secret_column} IS NOT NULL AND {secret_column} <> ''"
        )
        rows = cursor.fetchall()
    for pk, token in rows:
        try:
            column.rotated.append((pk, crypto.rotate(token)))
        except crypto.SecretDecryptionError:
            column.undecryptable.append(pk)
    return column


def _write_column(column: _Column) -> None:
    table, pk_column, quote = _table_names(column)
    secret_column = quote(column.field.column)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {secret_column} = %s WHERE {pk_column} = %s",
            [(token, pk) for pk, token in column.rotated],
        )


def _table_names(column: _Column) -> tuple[str, str, Any]:
    quote = connection.ops.quote_name
    meta = column.model._meta
    return quote(meta.db_table), quote(meta.pk.column), quote
