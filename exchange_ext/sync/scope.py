"""Which links a page of changes concerns (docs/performance.md, "Incremental planning").

A page of the change feed is planned against the keys it touches, not against the whole
mailbox; :func:`touched_keys` is the Exchange side of that choice (the PSA side is the audit
trail's cursor, in the engine). The planner decides each key from its link, its PSA item and
the view's items for it; a key the view does not concern, with a PSA item unchanged since its
link, plans nothing. So for an incremental view without an expanded window, planning the
touched keys (and the PSA's changed ones) gives the ops a whole plan would — the sync state
machine checks exactly that.
"""

from __future__ import annotations

from collections.abc import Iterable

from exchange_ext.sync.records import ExchangeView, Link, PsaKey, SyncOptions, master_of


def touched_keys(links: Iterable[Link], view: ExchangeView, options: SyncOptions) -> set[PsaKey]:
    """The keys of ``links`` the view concerns, and the keys our tags in it name.

    A link is concerned when the view lists or deletes its Exchange id, deletes its series'
    master, or lists an item with its iCalendar UID (re-identification). ``links`` may be any
    superset of those (the engine passes the rows its query pre-selected).
    """
    keys: set[PsaKey] = set()
    for item in (*view.items, *view.tagged):
        tag = item.psa_tag
        if tag is not None and tag.installation_id == options.installation_id:
            keys.add(tag.key)
    ids = {item.exchange_id for item in (*view.items, *view.tagged)} | set(view.deleted)
    uids = {item.ical_uid for item in view.items if item.ical_uid}
    for link in links:
        master_id = master_of(link.exchange_id)
        if (
            link.exchange_id in ids
            or (link.ical_uid and link.ical_uid in uids)
            or (master_id is not None and master_id in view.deleted)
        ):
            keys.add(link.key)
    return keys
