"""A PSA change queues a prompt sync of the mailboxes it concerns (a hint, never the only path).

``psa_item_changed`` is sent after the PSA's transaction commits. The receiver finds the
affected mailboxes — those already holding the item (its links) and those of the resources it
belongs to — and queues one sync each through :func:`dispatcher.enqueue_sync`, which queues at
most one task per mailbox until that task starts: a burst of edits costs one sync, not one per
edit. Its runs are recorded as "PSA change" (unless the mailbox was already queued for another
cause: the first queued cause wins, see the dispatcher). Writes made by a sync itself
(``origin.is_sync``) queue nothing — no echo loop. A signal that is lost loses nothing: the
scheduled run reads the PSA state anyway.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from exchange_ext.jobs import dispatcher
from exchange_ext.models import ItemLink, MailboxSettings, SyncRun

logger = logging.getLogger(__name__)

# PSA model label → the sync's item kind (ItemLink.kind).
KINDS = {
    "scheduling.appointment": "appointment",
    "scheduling.servicecall": "service_call",
    "scheduling.todo": "todo",
    "crm.contact": "contact",
}
# PSA models whose resource fields decide whose mailbox shows them.
RESOURCE_FIELDS = ("resource_id", "account_manager_id", "owner_id")


def on_psa_item_changed(sender: type, instance: Any, origin: Any, **kwargs: Any) -> None:
    """The ``psa_item_changed`` receiver; never raises (the PSA write already committed)."""
    if getattr(origin, "is_sync", False):
        return
    try:
        ids = affected_mailboxes(instance, kwargs.get("changes") or {})
        dispatcher.enqueue_syncs(ids, SyncRun.Trigger.PSA_CHANGE)
    except Exception:  # a broker hiccup must not turn a saved edit into an error page
        logger.exception("prompt sync not queued for %s", sender.__name__)


def affected_mailboxes(instance: Any, changes: dict[str, Any]) -> set[int]:
    """Mailbox settings ids that hold the item or belong to its resources."""
    ids: set[int] = set()
    kind = KINDS.get(instance._meta.label_lower)
    if kind and instance.pk is not None:
        links = ItemLink.objects.filter(kind=kind, psa_id=instance.pk)
        ids |= set(links.values_list("mailbox_settings_id", flat=True))
    resources = _resource_ids(instance, changes)
    if resources:
        owned = MailboxSettings.objects.filter(resource_id__in=resources, sync_enabled=True)
        ids |= set(owned.values_list("pk", flat=True))
    return ids


def _resource_ids(instance: Any, changes: dict[str, Any]) -> set[int]:
    label = instance._meta.label_lower
    found = {getattr(instance, name) for name in RESOURCE_FIELDS if hasattr(instance, name)}
    if label == "crm.contact" and instance.account_id:
        found.add(instance.account.account_manager_id)
    if label == "scheduling.servicecall":
        found |= _service_call_resources(instance, changes)
    return {pk for pk in found if pk}


def _service_call_resources(instance: Any, changes: dict[str, Any]) -> set[int]:
    # Resources removed by this edit must lose the call too: the audit diff is [old, new].
    found: set[int] = set()
    for keys in changes.get("resources") or []:
        found |= set(keys or [])
    with contextlib.suppress(ValueError):  # a deleted call has no m2m any more
        found |= set(instance.resources.values_list("pk", flat=True))
    return found
