"""Words for the items of a run (:class:`~exchange_ext.models.SyncRunItem`): their kind and
what changed, or why they failed, in the viewer's language."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext, pgettext

from exchange_ext.models import SyncRunItem
from exchange_ext.web.plan_reasons import reason_text

register = template.Library()


@register.simple_tag
def item_kind_label(kind: str) -> str:
    """``"Appointment"``, ``"Service call"``, ``"To-do"``, ``"Contact"`` (the raw kind else)."""
    labels = {
        "appointment": gettext("Appointment"),
        "service_call": gettext("Service call"),
        "todo": gettext("To-do"),
        "contact": gettext("Contact"),
    }
    return labels.get(kind, kind)


@register.simple_tag
def item_detail(item: SyncRunItem) -> str:
    """What changed (an update: its times, its details), which side a conflict kept, or why
    the item failed (the engine's words)."""
    if item.action == SyncRunItem.Action.CONFLICT:
        if item.side == SyncRunItem.Side.EXCHANGE:
            return gettext("Both sides changed it; the Exchange change was kept.")
        return gettext("Both sides changed it; the PSA change was kept.")
    if item.action == SyncRunItem.Action.FAILED:
        return item.detail
    groups = {
        "times": pgettext("what changed", "times"),
        "details": pgettext("what changed", "details"),
    }
    changed = [groups[g] for g in item.detail.split(", ") if g in groups]
    return ", ".join(changed)


@register.filter
def sync_reason(reason: str) -> str:
    """The planner's reason for an op in the viewer's language (web/plan_reasons.py)."""
    return reason_text(reason)
