"""The engine: the imperative shell around the pure planner (``exchange_ext.sync``).

:func:`run_sync` runs one mailbox cycle; :mod:`.runner` is the one runner every job goes
through, :mod:`.status` the one owner of a mailbox's status.
"""

from exchange_ext.engine.cycle import run_sync
from exchange_ext.engine.runner import DEFAULT_BUDGET_SECONDS

__all__ = ["DEFAULT_BUDGET_SECONDS", "run_sync"]
