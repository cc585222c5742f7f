"""Signals the PSA sends after a committed write, so extensions can react promptly.

``psa_item_changed(sender=<model class>, instance, action, origin, changes)`` is sent once the
transaction commits. Listeners must treat it as a hint only: a missed signal must never lose
data (the Exchange sync re-reads PSA state on every run).
"""

from django.dispatch import Signal

psa_item_changed = Signal()
