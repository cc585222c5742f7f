"""``{% removal_panel %}``: the **Remove synced items** part of a resource's admin page — its
button, the pending request, the removal running now and the latest result (docs/sync-rules.md,
"Removing synced items").

A tag rather than view context, so the resource page's view needs no change to show it.
"""

from __future__ import annotations

from typing import Any

from django import template

from exchange_ext.engine.removal import removable_counts, removal_progress, removed_count
from exchange_ext.web.removal import pending_labels

register = template.Library()


@register.inclusion_tag("exchange_ext/_removal_panel.html", takes_context=True)
def removal_panel(context: template.Context) -> dict[str, Any]:
    """Reads ``resource``, ``settings`` (unsaved when the resource never synced) and
    ``viewer_zone`` from the page's context."""
    settings = context.get("settings")
    mailbox = settings if settings is not None and settings.pk is not None else None
    progress = removal_progress(mailbox)
    counts = removable_counts(mailbox)
    latest = progress.latest
    return {
        "resource": context.get("resource"),
        "viewer_zone": context.get("viewer_zone") or "UTC",
        "progress": progress,
        "pending_labels": pending_labels(progress.pending),
        "total": sum(counts.values()),
        "left": sum(n for kind, n in counts.items() if kind in progress.pending),
        "latest": latest,
        "latest_deleted": removed_count(latest, "deleted") if latest else 0,
        "latest_gone": removed_count(latest, "gone") if latest else 0,
    }
