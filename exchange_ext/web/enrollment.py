"""Enabling and disabling resources for sync: the Resources tab.

Sync is never automatic: a resource syncs only once enabled here (README, "Configuring the MS
Exchange extension"). The work is a fixed number of statements whatever the number of
resources (a page may carry thousands of rows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Case, F, OuterRef, Subquery, When
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext

from exchange_ext.engine import status as mailbox_status
from exchange_ext.models import MailboxSettings
from psa.resources.models import Resource


def set_enabled_resources(
    enabled_ids: Iterable[int], disabled_ids: Iterable[int], *, now: dt.datetime | None = None
) -> list[MailboxSettings]:
    """Enable ``enabled_ids`` and disable ``disabled_ids`` (resource ids); return newly enabled.

    Creates MailboxSettings rows as needed, stamps ``enabled_at`` on the newly enabled ones and
    resets a status of DISABLED (a permanent-error disable) to NEVER, so the next run starts
    afresh. Already enabled resources are left untouched (no new ``enabled_at``, no email).
    Unknown or inactive resource ids are ignored for enabling. The returned settings have
    ``resource`` loaded (for the setup emails). An id in both sets raises ValueError.

    The mailbox a sync opens is stored here, from the resource's PSA email at this moment,
    when the row has none yet (docs/security.md, "Whose mailbox"); a stored address is kept.
    Resources :func:`refused_enrollments` names are not enabled.
    """
    enable, disable = set(enabled_ids), set(disabled_ids)
    if enable & disable:
        raise ValueError(f"resources both enabled and disabled: {sorted(enable & disable)}")
    now = now or timezone.now()
    with transaction.atomic():
        enable -= set(refused_enrollments(enable))
        newly = _enable(enable, now) if enable else []
        if disable:
            MailboxSettings.objects.filter(resource_id__in=disable, sync_enabled=True).update(
                sync_enabled=False
            )
    return newly


def refused_enrollments(resource_ids: Iterable[int]) -> dict[int, str]:
    """Resources of ``resource_ids`` that cannot be enabled, with why, in plain words.

    A resource is refused when it has no stored mailbox and no PSA email to take it from, or
    when the address it would sync is already another resource's mailbox (one mailbox belongs
    to one resource: otherwise two PSA calendars would write into one Exchange calendar).
    """
    ids = set(resource_ids)
    if not ids:
        return {}
    stored = dict(
        MailboxSettings.objects.filter(resource_id__in=ids).values_list("resource_id", "mailbox")
    )
    wanted: dict[int, str] = {}
    refused: dict[int, str] = {}
    for resource in Resource.objects.filter(pk__in=ids, active=True).only("pk", "email"):
        address = (stored.get(resource.pk) or resource.email or "").strip().lower()
        if address:
            wanted[resource.pk] = address
        else:
            refused[resource.pk] = gettext("%(resource)s has no email address to sync.") % {
                "resource": resource
            }
    owners = (
        MailboxSettings.objects.filter(mailbox__in=set(wanted.values()))
        .select_related("resource")
        .only("mailbox", "resource_id", "resource__first_name", "resource__last_name")
    )
    owner_of = {row.mailbox: row for row in owners}
    for resource_id, address in wanted.items():
        owner = owner_of.get(address)
        if owner is not None and owner.resource_id != resource_id:
            refused[resource_id] = gettext(
                "The mailbox %(mailbox)s already belongs to %(resource)s; an administrator "
                "changes one of the two mailbox addresses on the resource's page first."
            ) % {"mailbox": address, "resource": owner.resource}
    return refused


def _enable(resource_ids: set[int], now: dt.datetime) -> list[MailboxSettings]:
    existing = list(
        MailboxSettings.objects.select_related("resource").filter(resource_id__in=resource_ids)
    )
    reenabled = [s for s in existing if not s.sync_enabled]
    _reenable(reenabled, now)
    have = {s.resource_id for s in existing}
    created = _create(resource_ids - have, now)
    return reenabled + created


def _reenable(settings: list[MailboxSettings], now: dt.datetime) -> None:
    if not settings:
        return
    email = Resource.objects.filter(pk=OuterRef("resource_id")).values("email")[:1]
    MailboxSettings.objects.filter(pk__in=[s.pk for s in settings]).update(
        sync_enabled=True,
        enabled_at=now,
        status=mailbox_status.reenable_values(),
        mailbox=Case(When(mailbox="", then=Lower(Subquery(email))), default=F("mailbox")),
    )
    for s in settings:  # mirror the UPDATE on the returned objects
        s.sync_enabled, s.enabled_at = True, now
        s.status = mailbox_status.reenabled(s.status)
        s.mailbox = s.mailbox or s.resource.email.lower()


def _create(resource_ids: set[int], now: dt.datetime) -> list[MailboxSettings]:
    """Insert the missing rows with one INSERT … SELECT, then read them back with one SELECT.

    ``bulk_create`` would split the rows into batches of ~38 on SQLite (999 parameters per
    statement, ~26 columns a row); selecting from the resources table needs one parameter per
    column plus one per id, whatever the number of rows. Only active resources are enrolled;
    each row's mailbox is its resource's email, lower-cased.
    """
    if not resource_ids:
        return []
    columns, values = _insert_defaults(now)
    ids = sorted(resource_ids)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(MailboxSettings._meta.db_table)} "
        f"({', '.join(quote(c) for c in columns)}) "
        f"SELECT {quote('id')}, LOWER({quote('email')}), {', '.join(['%s'] * len(values))} "
        f"FROM {quote(Resource._meta.db_table)} "
        f"WHERE {quote('active')} AND {quote('id')} IN ({', '.join(['%s'] * len(ids))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, *ids])
    return list(
        MailboxSettings.objects.select_related("resource")
        .filter(resource_id__in=ids, enabled_at=now, sync_enabled=True)
        .order_by("pk")
    )


def _insert_defaults(now: dt.datetime) -> tuple[list[str], list[object]]:
    """Columns after ``resource_id`` and ``mailbox`` and their values: the model defaults,
    enabled now."""
    overrides: dict[str, object] = {"sync_enabled": True, "enabled_at": now}
    columns, values = ["resource_id", "mailbox"], []
    for field in MailboxSettings._meta.concrete_fields:
        if field.primary_key or field.column in ("resource_id", "mailbox"):
            continue
        value = overrides.get(field.name, field.get_default())
        columns.append(field.column)
        values.append(field.get_db_prep_save(value, connection))
    return columns, values
