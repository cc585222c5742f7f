"""A resource's **Preview next sync** (SPEC §3.3): administrators only.

POST (CSRF-protected; it asks Exchange, so a link or a crawler never starts it) computes the
preview in the request (:func:`exchange_ext.engine.preview.preview_sync`, bounded in time and
in items listed) and renders it: per side (PSA, Exchange) and action (create, update, delete)
the count and the first items, the conflicts, and what the mass-delete guard would hold.
Nothing is written, so the page is the POST's answer rather than a redirect (PRG exists to
keep a write from repeating; reloading repeats a read). A refusal (a sync is running, the
resource does not sync: status 409) or a backend error (the preview's answer: 200) shows in
plain words.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from exchange_ext.engine.preview import MAX_LISTED, Preview, PreviewRefused, preview_sync
from exchange_ext.models import MailboxSettings
from exchange_ext.web.permissions import manager_required
from exchange_ext.web.views import ADMIN_TABS
from psa.resources.models import Resource
from psa.resources.permissions import own_resource
from psa.scheduling.selection import fallback_zone_name

SIDE_LABELS = {"psa": _("In the PSA"), "exchange": _("In Exchange")}
ACTION_LABELS = {"created": _("Created"), "updated": _("Updated"), "deleted": _("Deleted")}
KIND_LABELS = {
    "appointment": _("Appointment"),
    "service_call": _("Service call"),
    "todo": _("To-do"),
    "contact": _("Contact"),
}
FOLDER_LABELS = {"calendar": _("Calendar"), "contacts": _("Contacts")}


@manager_required
@require_POST
def preview_next_sync(request: HttpRequest, resource_id: int) -> HttpResponse:
    resource = get_object_or_404(Resource, pk=resource_id)
    mailbox = MailboxSettings.objects.filter(resource=resource).first()
    context: dict[str, object] = {
        "tab": "resources",
        "admin_tabs": ADMIN_TABS,
        "resource": resource,
        "settings": mailbox,
        "max_listed": MAX_LISTED,
        "viewer_zone": _viewer_zone(request),
    }
    status = 200
    if mailbox is None or mailbox.pk is None:
        context["refused"] = _("This resource never synced and is not enabled; nothing to preview.")
        status = 409
    else:
        try:
            preview = preview_sync(mailbox.pk)
        except PreviewRefused as refusal:
            context["refused"] = str(refusal)
            status = 409
        else:
            context.update(_described(preview))
    return render(request, "exchange_ext/preview.html", context, status=status)


def _described(preview: Preview) -> dict[str, object]:
    """The preview with its labels, for the template."""
    groups = [
        {
            "group": group,
            "side": SIDE_LABELS[group.side],
            "action": ACTION_LABELS[group.action],
            "items": [
                (item, KIND_LABELS.get(item.kind.value, item.kind.value)) for item in group.items
            ],
        }
        for group in preview.groups
    ]
    extras = {
        name: [(item, KIND_LABELS.get(item.kind.value, item.kind.value)) for item in g.items]
        for name, g in (("conflict_items", preview.conflicts), ("held_items", preview.held))
    }
    unread = [FOLDER_LABELS.get(folder.value, folder.value) for folder in preview.unread]
    return {"preview": preview, "groups": groups, "unread": unread, **extras}


def _viewer_zone(request: HttpRequest) -> str:
    resource = own_resource(request.user)
    return resource.time_zone if resource else fallback_zone_name()
