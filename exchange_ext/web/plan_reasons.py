"""The planner's reasons in the viewer's language (Preview next sync, the run's item list).

The pure planner (``exchange_ext/sync``, no Django) states each op's reason in English; this
table gives every reason it can state a translation. The three patterns built from field
groups ("times changed in Exchange", "both sides changed details; the PSA side wins") are
listed for every group combination. ``tests/unit/test_plan_reasons.py`` fails on a reason the
planner, ``sync/held.py`` or ``sync/moves.py`` can state that is missing here; an unknown one
still shows in English rather than not at all.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import pgettext_lazy

REASONS: dict[str, Promise] = {
    "baseline refreshed (no content to write)": pgettext_lazy(
        "sync reason", "baseline refreshed (no content to write)"
    ),
    "both sides changed details and times; the Exchange side wins": pgettext_lazy(
        "sync reason", "both sides changed details and times; the Exchange side wins"
    ),
    "both sides changed details and times; the PSA side wins": pgettext_lazy(
        "sync reason", "both sides changed details and times; the PSA side wins"
    ),
    "both sides changed details; the Exchange side wins": pgettext_lazy(
        "sync reason", "both sides changed details; the Exchange side wins"
    ),
    "both sides changed details; the PSA side wins": pgettext_lazy(
        "sync reason", "both sides changed details; the PSA side wins"
    ),
    "both sides changed times; the Exchange side wins": pgettext_lazy(
        "sync reason", "both sides changed times; the Exchange side wins"
    ),
    "both sides changed times; the PSA side wins": pgettext_lazy(
        "sync reason", "both sides changed times; the PSA side wins"
    ),
    "changed in the PSA after its Exchange copy was deleted": pgettext_lazy(
        "sync reason", "changed in the PSA after its Exchange copy was deleted"
    ),
    "deleted in Exchange": pgettext_lazy("sync reason", "deleted in Exchange"),
    "deleted in Exchange: not reflected, re-exported on the next PSA change": pgettext_lazy(
        "sync reason", "deleted in Exchange: not reflected, re-exported on the next PSA change"
    ),
    "deleted in both, or aged out": pgettext_lazy("sync reason", "deleted in both, or aged out"),
    "deleted in the PSA or left this mailbox's scope": pgettext_lazy(
        "sync reason", "deleted in the PSA or left this mailbox's scope"
    ),
    "deleted in the PSA; not the organizer, or already past: unlinked only": pgettext_lazy(
        "sync reason", "deleted in the PSA; not the organizer, or already past: unlinked only"
    ),
    "deleted on both sides": pgettext_lazy("sync reason", "deleted on both sides"),
    "details and times changed in Exchange": pgettext_lazy(
        "sync reason", "details and times changed in Exchange"
    ),
    "details and times changed in the PSA": pgettext_lazy(
        "sync reason", "details and times changed in the PSA"
    ),
    "details changed in Exchange": pgettext_lazy("sync reason", "details changed in Exchange"),
    "details changed in the PSA": pgettext_lazy("sync reason", "details changed in the PSA"),
    "duplicate of an item already linked (tag seen twice)": pgettext_lazy(
        "sync reason", "duplicate of an item already linked (tag seen twice)"
    ),
    "found under a new id (another protocol or folder)": pgettext_lazy(
        "sync reason", "found under a new id (another protocol or folder)"
    ),
    "held deletion": pgettext_lazy("sync reason", "held deletion"),
    "imported item re-found by content": pgettext_lazy(
        "sync reason", "imported item re-found by content"
    ),
    "its series moved and has no occurrence left for it: kept in the PSA": pgettext_lazy(
        "sync reason", "its series moved and has no occurrence left for it: kept in the PSA"
    ),
    "left the sync window": pgettext_lazy("sync reason", "left the sync window"),
    "moved out of the sync window": pgettext_lazy("sync reason", "moved out of the sync window"),
    "new in Exchange": pgettext_lazy("sync reason", "new in Exchange"),
    "new in the PSA": pgettext_lazy("sync reason", "new in the PSA"),
    "our tagged item whose PSA item no longer exists": pgettext_lazy(
        "sync reason", "our tagged item whose PSA item no longer exists"
    ),
    "restored: exported again": pgettext_lazy("sync reason", "restored: exported again"),
    "restored: kept": pgettext_lazy("sync reason", "restored: kept"),
    "seen at a new version; its deletion waits": pgettext_lazy(
        "sync reason", "seen at a new version; its deletion waits"
    ),
    "tagged item found without a link": pgettext_lazy(
        "sync reason", "tagged item found without a link"
    ),
    "the resource's mailbox moved: our copy leaves the old mailbox": pgettext_lazy(
        "sync reason", "the resource's mailbox moved: our copy leaves the old mailbox"
    ),
    "times changed in Exchange": pgettext_lazy("sync reason", "times changed in Exchange"),
    "times changed in the PSA": pgettext_lazy("sync reason", "times changed in the PSA"),
    "unlinked item gone from Exchange or aged out": pgettext_lazy(
        "sync reason", "unlinked item gone from Exchange or aged out"
    ),
    "unlinked item re-identified: still never imported": pgettext_lazy(
        "sync reason", "unlinked item re-identified: still never imported"
    ),
}


def reason_text(reason: str) -> str:
    """``reason`` in the active language (as the planner stated it when not listed)."""
    translated = REASONS.get(reason)
    return str(translated) if translated is not None else reason
