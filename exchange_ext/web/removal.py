"""A resource's **Remove synced items** action (README, "Configuring the MS Exchange
extension"; docs/sync-rules.md, "Removing synced items"): administrators only.

GET shows the confirmation page: per item kind, how many copies the extension wrote and would
delete, each kind checked. POST (CSRF-protected like every form) turns the sync of the chosen
kinds off and queues the removal (:func:`exchange_ext.jobs.removals.request_removal`); the
resource's page then shows its progress and result, and its sync log the run. Nothing is
deleted in the web request: a mailbox with thousands of items is a background task's work.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from exchange_ext.engine.removal import removable_counts, removal_progress
from exchange_ext.jobs.removals import request_removal
from exchange_ext.models import MailboxSettings
from exchange_ext.sync.records import ItemKind
from exchange_ext.web.permissions import manager_required
from exchange_ext.web.views import ADMIN_TABS
from psa.resources.models import Resource

#: What each kind is called on the page: what the extension exported, never imported items.
KIND_LABELS = {
    ItemKind.APPOINTMENT: gettext_lazy("Appointments exported from the PSA"),
    ItemKind.SERVICE_CALL: gettext_lazy("Service calls"),
    ItemKind.TODO: gettext_lazy("To-dos"),
    ItemKind.CONTACT: gettext_lazy("Contacts"),
}


def pending_labels(kinds: frozenset[ItemKind]) -> list[str]:
    """The labels of ``kinds``, in the page's order."""
    return [str(label) for kind, label in KIND_LABELS.items() if kind in kinds]


class RemovalForm(forms.Form):
    kinds = forms.TypedMultipleChoiceField(
        choices=list(KIND_LABELS.items()),
        coerce=ItemKind,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": gettext_lazy("Choose at least one item type to remove.")},
    )


@dataclass(frozen=True)
class KindRow:
    """One line of the confirmation page: a kind, its label, its count, whether it is checked."""

    kind: ItemKind
    label: str
    count: int
    checked: bool


@manager_required
def remove_synced_items(request: HttpRequest, resource_id: int) -> HttpResponse:
    """The confirmation page (GET) and the confirmation (POST, then back to the resource)."""
    resource = get_object_or_404(Resource, pk=resource_id)
    mailbox = MailboxSettings.objects.filter(resource=resource).first()
    form = RemovalForm(request.POST or None)
    if form.is_bound and form.is_valid() and mailbox is not None:
        pending = request_removal(mailbox, form.cleaned_data["kinds"])
        names = ", ".join(pending_labels(pending))
        text = _("Removal of synced items queued (%(kinds)s); its progress shows below.")
        messages.success(request, text % {"kinds": names})
        return redirect("exchange_ext:resource_settings", resource_id=resource.pk)
    if form.is_bound and mailbox is None:
        form.add_error(None, _("This resource never synced: there is nothing to remove."))
    return _render(request, resource, mailbox, form)


def _render(
    request: HttpRequest, resource: Resource, mailbox: MailboxSettings | None, form: RemovalForm
) -> HttpResponse:
    counts = removable_counts(mailbox)
    chosen = set(form.data.getlist("kinds")) if form.is_bound else {k.value for k in ItemKind}
    rows = [
        KindRow(kind, str(label), counts[kind], kind.value in chosen)
        for kind, label in KIND_LABELS.items()
    ]
    context = {
        "tab": "resources",
        "admin_tabs": ADMIN_TABS,
        "resource": resource,
        "settings": mailbox,
        "form": form,
        "rows": rows,
        "total": sum(counts.values()),
        "progress": removal_progress(mailbox),
    }
    context["pending_labels"] = pending_labels(context["progress"].pending)
    status = 400 if form.is_bound else 200
    return render(request, "exchange_ext/remove_synced_items.html", context, status=status)
