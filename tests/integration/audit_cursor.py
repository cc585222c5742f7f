"""The PSA's audit cursor in tests (exchange_ext/engine/scope.py, docs/performance.md,
"Incremental planning")."""

from __future__ import annotations

from django.db.models import F

from exchange_ext.engine import scope
from psa.audit.models import AuditEntry


def settled() -> None:
    """Age the audit trail past the cursor's patience: on PostgreSQL the ids of this test follow
    those of rolled-back tests, a gap the cursor otherwise waits out (scope.GAP_PATIENCE) by
    planning in full."""
    AuditEntry.objects.update(at=F("at") - 2 * scope.GAP_PATIENCE)
