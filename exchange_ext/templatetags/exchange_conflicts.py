"""``{% run_conflicts run viewer_zone as conflicts %}``: a run's conflicts told in plain words
(:mod:`exchange_ext.web.conflicts`), for the run log's Conflicts column."""

from __future__ import annotations

from django import template

from exchange_ext.models import SyncRun
from exchange_ext.web.conflicts import ConflictView, conflicts_of

register = template.Library()


@register.simple_tag
def run_conflicts(run: SyncRun, zone: str) -> list[ConflictView]:
    """The run's conflicts (none without any: no query), times in ``zone``."""
    if not run.conflicts:
        return []
    return conflicts_of(run.entries.all(), zone)
