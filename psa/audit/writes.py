"""The one place PSA objects are created, updated and deleted.

Each app's ``actions.py`` wraps these with typed signatures; views, the admin-facing forms and
the sync all go through them. Every write is validated (``full_clean``), saved in a
transaction, recorded as an :class:`AuditEntry` with its :class:`Origin`, and announced with
``psa_item_changed`` after commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.db import models, transaction

from psa.audit.models import AuditEntry
from psa.audit.origin import Origin
from psa.audit.signals import psa_item_changed

M = TypeVar("M", bound=models.Model)

Changes = dict[str, list[Any]]


def create_object(
    origin: Origin,
    model: type[M],
    fields: Mapping[str, Any],
    many: Mapping[str, Iterable[models.Model]] | None = None,
) -> M:
    """Validate and insert a new ``model`` row; ``many`` sets many-to-many fields after it."""
    with transaction.atomic():
        instance = model(**fields)
        instance.full_clean()
        instance.save()
        for name, values in (many or {}).items():
            getattr(instance, name).set(values)
        changes = {name: [None, _jsonable(getattr(instance, name))] for name in fields}
        changes.update({name: [None, _m2m_keys(instance, name)] for name in many or {}})
        _record(origin, instance, AuditEntry.Action.CREATE, changes)
    return instance


def update_object(
    origin: Origin,
    instance: M,
    fields: Mapping[str, Any],
    many: Mapping[str, Iterable[models.Model]] | None = None,
) -> Changes:
    """Apply ``fields`` (and many-to-many ``many``) to ``instance``; return what changed.

    A write that changes nothing saves nothing and records nothing, so repeated syncs of an
    unchanged item leave no trace and send no signal.
    """
    with transaction.atomic():
        changes: Changes = {}
        for name, value in fields.items():
            old = _jsonable(getattr(instance, name))
            setattr(instance, name, value)
            new = _jsonable(getattr(instance, name))
            if old != new:
                changes[name] = [old, new]
        if changes:
            instance.full_clean()
            instance.save()
        for name, values in (many or {}).items():
            old_keys = _m2m_keys(instance, name)
            getattr(instance, name).set(values)
            new_keys = _m2m_keys(instance, name)
            if old_keys != new_keys:
                changes[name] = [old_keys, new_keys]
        if changes:
            _record(origin, instance, AuditEntry.Action.UPDATE, changes)
    return changes


def delete_object(origin: Origin, instance: models.Model) -> None:
    """Delete ``instance`` and record what it was: every field (many-to-many too) as
    ``[old, None]``, so readers of the trail know what a deleted row pointed to."""
    with transaction.atomic():
        pk = instance.pk
        changes: Changes = {
            field.name: [_jsonable(getattr(instance, field.attname)), None]
            for field in instance._meta.concrete_fields
            if not field.primary_key
        }
        many = instance._meta.many_to_many
        changes.update({field.name: [_m2m_keys(instance, field.name), None] for field in many})
        _record(origin, instance, AuditEntry.Action.DELETE, changes)
        instance.delete()
        instance.pk = pk  # listeners after commit still need to know which row went


def _record(origin: Origin, instance: models.Model, action: str, changes: Changes) -> None:
    AuditEntry.objects.create(
        action=action,
        origin_kind=origin.kind,
        origin_source=origin.source,
        user_id=origin.user_id,
        model=instance._meta.label_lower,
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        changes=changes,
    )
    transaction.on_commit(
        lambda: psa_item_changed.send(
            sender=type(instance), instance=instance, action=action, origin=origin, changes=changes
        )
    )


def _m2m_keys(instance: models.Model, name: str) -> list[Any]:
    return sorted(getattr(instance, name).values_list("pk", flat=True))


def _jsonable(value: Any) -> Any:
    """A JSON-safe rendering of a field value, used to compare and to audit."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
