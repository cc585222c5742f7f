"""``/extensions/exchange/notifications/graph/``: Microsoft Graph change notifications arrive here
(SPEC §4.3, docs/sync-rules.md "Push").

Contract:

- ``POST ?validationToken=T`` (Graph's handshake when a subscription is created or renewed, for
  the notification and the lifecycle URL alike) answers ``200 text/plain`` with ``T`` exactly,
  at once, whatever the body. A token over :data:`MAX_TOKEN` characters is refused (400).
- ``POST`` with a JSON body ``{"value": [...]}``: each entry must name a subscription this
  installation holds and carry its ``clientState`` (compared in constant time). A valid change
  notification queues a prompt sync of the subscription's mailbox through the dispatcher,
  which queues at most one task per mailbox until it starts: a burst is one sync. Lifecycle
  notifications (``lifecycleEvent``): ``missed`` syncs; ``reauthorizationRequired`` marks the
  subscription for renewal and syncs; ``subscriptionRemoved`` forgets it (it is created again)
  and syncs. Answers 202 when at least one entry was valid; 403 when none was (a forged or a
  stale notification syncs nothing); 400 for a body that is not such a document.
- Nothing here reads Exchange or runs a sync: the answer is quick, as Graph requires, and a
  lost notification only delays a change to the next polling slot.
- No login, no CSRF token (Graph cannot have either): the ``clientState`` is the credential.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from exchange_ext.jobs import dispatcher
from exchange_ext.models import GraphSubscription, SyncRun
from exchange_ext.secrets import reveal

logger = logging.getLogger(__name__)

MAX_TOKEN = 1024  # Graph's validation tokens are a few hundred characters
MAX_ENTRIES = 1000  # Graph batches far fewer per POST
LIFECYCLE_EVENTS = frozenset({"missed", "reauthorizationRequired", "subscriptionRemoved"})


@dataclass
class Outcome:
    """What one POST's entries came to."""

    mailboxes: set[int] = field(default_factory=set)
    accepted: int = 0
    refused: int = 0


@csrf_exempt
@require_POST
def graph_notifications(request: HttpRequest) -> HttpResponse:
    """The notification URL (see the module contract)."""
    token = request.GET.get("validationToken")
    if token is not None:
        if len(token) > MAX_TOKEN:
            return _plain("validation token too long", status=400)
        return _plain(token, status=200)
    entries = _entries(request.body)
    if entries is None:
        return _plain("expected a JSON object with a list 'value'", status=400)
    outcome = accept(entries)
    if outcome.mailboxes:
        dispatcher.enqueue_syncs(outcome.mailboxes, SyncRun.Trigger.EXCHANGE_CHANGE)
    if outcome.accepted:
        return HttpResponse(status=202)
    return _plain("no notification of a subscription held here", status=403)


def accept(entries: list[Any]) -> Outcome:
    """Check each entry against the subscriptions held; apply lifecycle events; return the
    mailboxes to sync."""
    outcome = Outcome()
    ids = {e.get("subscriptionId") for e in entries if isinstance(e, dict)}
    held = {
        s.subscription_id: s
        for s in GraphSubscription.objects.filter(
            subscription_id__in=[i for i in ids if isinstance(i, str)]
        ).select_related("mailbox_settings")
    }
    now = timezone.now()
    for entry in entries:
        subscription = held.get(entry.get("subscriptionId")) if isinstance(entry, dict) else None
        if subscription is None or not _client_state_matches(subscription, entry):
            outcome.refused += 1
            continue
        outcome.accepted += 1
        event = entry.get("lifecycleEvent")
        if event == "subscriptionRemoved":
            subscription.delete()
        elif event == "reauthorizationRequired":
            subscription.needs_renewal = True
        if event != "subscriptionRemoved":
            subscription.last_notification_at = now
            subscription.save(update_fields=["last_notification_at", "needs_renewal"])
        if subscription.mailbox_settings.sync_enabled:
            outcome.mailboxes.add(subscription.mailbox_settings_id)
    if outcome.refused:
        logger.warning(
            "refused %d Graph notification(s): unknown subscription or wrong clientState",
            outcome.refused,
        )
    return outcome


def _client_state_matches(subscription: GraphSubscription, entry: dict[str, Any]) -> bool:
    given = entry.get("clientState")
    expected = reveal(subscription.client_state)
    if not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _entries(body: bytes) -> list[Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    entries = document.get("value") if isinstance(document, dict) else None
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        return None
    return entries


def _plain(text: str, *, status: int) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"  # an echoed token is never rendered
    return response
