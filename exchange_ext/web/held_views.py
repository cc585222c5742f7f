"""Confirm deletions / Restore: an administrator's decision on deletions the mass-delete guard
holds (docs/sync-rules.md, "Mass-delete guard").

The page shows the held set (counts and the first titles) and posts back exactly the rows it
showed; a row decided, revived or added since is not touched by this decision. The decision
is stored and carried out by the next run, which is queued at once and runs under the
mailbox's lease like every other write.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from exchange_ext.engine import held
from exchange_ext.jobs import dispatcher
from exchange_ext.models import HeldDeletion, MailboxSettings, SyncRun
from exchange_ext.web.permissions import manager_required
from psa.resources.models import Resource


@manager_required
@require_POST
def confirm_deletions(request: HttpRequest, resource_id: int) -> HttpResponse:
    return _decide(request, resource_id, HeldDeletion.State.CONFIRMED)


@manager_required
@require_POST
def restore_deletions(request: HttpRequest, resource_id: int) -> HttpResponse:
    return _decide(request, resource_id, HeldDeletion.State.RESTORED)


def _decide(request: HttpRequest, resource_id: int, state: str) -> HttpResponse:
    resource = get_object_or_404(Resource, pk=resource_id)
    settings = MailboxSettings.objects.filter(resource=resource).first()
    try:
        ids = [int(value) for value in request.POST.getlist("held")]
    except ValueError:
        ids = []
    decided = held.decide(settings, ids, state) if (ids and settings) else 0
    if not decided:
        messages.error(request, _("Nothing was decided: the held deletions changed meanwhile. "
                                  "Check the list again."))  # fmt: skip
    else:
        assert settings is not None
        dispatcher.enqueue_sync(settings.pk, SyncRun.Trigger.SYNC_NOW)
        if state == HeldDeletion.State.CONFIRMED:
            text = ngettext(
                "Confirmed: %(count)d deletion is applied by the sync that starts now.",
                "Confirmed: %(count)d deletions are applied by the sync that starts now.",
                decided,
            )
        else:
            text = ngettext(
                "Restored: %(count)d item is kept; nothing is deleted.",
                "Restored: %(count)d items are kept; nothing is deleted.",
                decided,
            )
        messages.success(request, text % {"count": decided})
    return redirect("exchange_ext:resource_settings", resource_id=resource_id)
