"""Per-item sync history: a run's page listing the items it touched, and the sync panel on each
PSA item's page (its state per mailbox and the last runs that touched it).

Who sees what, as on the run log they come from (:mod:`exchange_ext.web.permissions`):
administrators (``exchange_ext.manage_extension``) any run and every mailbox's state; a
technician only the runs and state of their own resource's mailbox. The admin's run page
answers 403 to anyone else, the profile's run page 404 for a run that is not the user's own
(its id says nothing of whether it exists); an item page shows no panel to who may see none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Model, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from exchange_ext.models import ItemLink, MailboxSettings, SyncRun, SyncRunItem
from exchange_ext.web.permissions import can_manage_extension, manager_required
from exchange_ext.web.views import ADMIN_TABS
from psa.crm.models import Contact
from psa.resources.permissions import own_resource
from psa.scheduling.models import Appointment, ServiceCall, Todo
from psa.scheduling.selection import fallback_zone_name

ITEMS_PER_PAGE = 100
#: Runs shown on an item's page, newest first, over every mailbox the viewer may see.
HISTORY_LENGTH = 10

#: Where each kind's PSA page is (the item's own page: its form, or the contact's details).
_ITEM_PAGES: dict[str, tuple[type[Model], str]] = {
    "appointment": (Appointment, "appointment_edit"),
    "todo": (Todo, "todo_edit"),
    "service_call": (ServiceCall, "service_call_edit"),
    "contact": (Contact, "crm:contact_detail"),
}


# ---- a run's page ----------------------------------------------------------------------------


@manager_required
@require_GET
def run_items(request: HttpRequest, run_id: int) -> HttpResponse:
    """Any run's items, for administrators (the public contacts folder's runs too)."""
    run = get_object_or_404(SyncRun.objects.select_related("mailbox_settings__resource"), pk=run_id)
    return _render_run(request, run, admin=True)


@login_required
@require_GET
def profile_run_items(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run of the user's own mailbox; any other run is not found."""
    resource = own_resource(request.user)
    if resource is None:
        raise Http404
    runs = SyncRun.objects.select_related("mailbox_settings__resource")
    run = get_object_or_404(runs, pk=run_id, mailbox_settings__resource=resource)
    return _render_run(request, run, admin=False)


def _render_run(request: HttpRequest, run: SyncRun, *, admin: bool) -> HttpResponse:
    items = run.items.order_by("id")
    page = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    context = {
        "run": run,
        "page": page,
        "rows": [(item, url) for item, url in zip(rows, item_urls(rows), strict=True)],
        "is_admin_page": admin,
        "base_template": "exchange_ext/_layout.html" if admin else "resources/profile_base.html",
        "back_url": _back_url(run, admin),
        "viewer_zone": _viewer_zone(request),
        "active_tab": "exchange",
        "admin_tabs": ADMIN_TABS,
        "tab": "status" if run.is_public_folder else "resources",
    }
    return render(request, "exchange_ext/run_items.html", context)


def _back_url(run: SyncRun, admin: bool) -> str:
    if not admin:
        return reverse("exchange_ext_profile:profile_exchange")
    if run.mailbox_settings is None:
        return reverse("exchange_ext:status")
    return reverse("exchange_ext:resource_settings", args=[run.mailbox_settings.resource_id])


def item_urls(items: list[SyncRunItem]) -> list[str]:
    """Each item's PSA page, ``""`` when the item no longer exists (one query per kind)."""
    wanted: dict[str, set[int]] = {}
    for item in items:
        if item.kind in _ITEM_PAGES and item.psa_id is not None:
            wanted.setdefault(item.kind, set()).add(item.psa_id)
    alive: dict[str, set[int]] = {}
    for kind, ids in wanted.items():
        model = _ITEM_PAGES[kind][0]
        alive[kind] = set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return [
        reverse(_ITEM_PAGES[item.kind][1], args=[item.psa_id])
        if item.psa_id in alive.get(item.kind, set())
        else ""
        for item in items
    ]


# ---- the sync panel of an item's page --------------------------------------------------------


@dataclass(frozen=True)
class MailboxState:
    """An item's sync state in one mailbox: ``state`` one of synced / pending / error /
    exchange_deleted / unlinked / not_synced, with its label, since when, and why (errors)."""

    mailbox: MailboxSettings
    state: str
    label: str
    since: dt.datetime | None
    detail: str = ""


def item_sync_panel(request: HttpRequest, kind: str, item: Model) -> str:
    """The panel's HTML for ``item``; ``""`` when the viewer may see no mailbox's sync of it."""
    visible = _visible_mailboxes(request)
    if visible is None or kind not in _ITEM_PAGES:
        return ""
    links = ItemLink.objects.filter(kind=kind, psa_id=item.pk).filter(
        _in_mailboxes(visible, "mailbox_settings")
    )
    history = list(
        SyncRunItem.objects.filter(kind=kind, psa_id=item.pk)
        .filter(_in_mailboxes(visible, "run__mailbox_settings"))
        .select_related("run__mailbox_settings__resource")
        .order_by("-run__started_at", "-id")[:HISTORY_LENGTH]
    )
    states = _states(list(links.select_related("mailbox_settings__resource")), history, item)
    if not states and not history:
        return ""
    context = {
        "states": states,
        "history": history,
        "admin": visible == "all",
        "viewer_zone": _viewer_zone(request),
    }
    return render_to_string("exchange_ext/_item_sync.html", context, request=request)


def _visible_mailboxes(request: HttpRequest) -> Any:
    """``"all"`` for administrators, the user's own mailbox id, or None (nothing to see)."""
    if can_manage_extension(request.user):
        return "all"
    resource = own_resource(request.user)
    if resource is None:
        return None
    mailbox = MailboxSettings.objects.filter(resource=resource).values_list("pk", flat=True)
    return mailbox.first()


def _in_mailboxes(visible: Any, field: str) -> Q:
    if visible == "all":
        return Q()
    return Q(**{f"{field}_id": visible})


def _states(links: list[ItemLink], history: list[SyncRunItem], item: Model) -> list[MailboxState]:
    """One state per mailbox that holds a link of the item or whose runs touched it."""
    latest: dict[int, SyncRunItem] = {}
    mailboxes: dict[int, MailboxSettings] = {}
    for entry in history:  # newest first: the first seen per mailbox is its latest
        mailbox = entry.run.mailbox_settings
        if mailbox is not None and mailbox.pk not in latest:
            latest[mailbox.pk] = entry
            mailboxes[mailbox.pk] = mailbox
    changed_at = getattr(item, "updated_at", None)
    states = [_state(link, latest.get(link.mailbox_settings_id), changed_at) for link in links]
    linked = {link.mailbox_settings_id for link in links}
    for pk, entry in latest.items():
        if pk not in linked:
            states.append(_unlinked_state(mailboxes[pk], entry))
    return sorted(states, key=lambda s: (s.mailbox.resource.full_name, s.mailbox.pk))


def _state(link: ItemLink, last: SyncRunItem | None, changed_at: Any) -> MailboxState:
    mailbox = link.mailbox_settings
    if last is not None and last.action == SyncRunItem.Action.FAILED:
        return MailboxState(mailbox, "error", gettext("Error"), last.run.started_at, last.detail)
    if link.state != ItemLink.State.LINKED:
        return MailboxState(mailbox, link.state, link.get_state_display(), link.updated_at)
    if changed_at is not None and changed_at > link.updated_at:
        return MailboxState(mailbox, "pending", gettext("Changed since, waiting"), changed_at)
    return MailboxState(mailbox, "synced", gettext("Synced"), link.updated_at)


def _unlinked_state(mailbox: MailboxSettings, last: SyncRunItem) -> MailboxState:
    if last.action == SyncRunItem.Action.FAILED:
        return MailboxState(mailbox, "error", gettext("Error"), last.run.started_at, last.detail)
    return MailboxState(mailbox, "not_synced", gettext("Not synced"), last.run.started_at)


def _viewer_zone(request: HttpRequest) -> str:
    resource = own_resource(request.user)
    return resource.time_zone if resource else fallback_zone_name()
