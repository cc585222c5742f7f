"""The extension's pages: the admin's three tabs, a resource's settings, the profile tab.

One view per page and per button: each button of a page is its own ``<form>`` posting to its own
view (Save, Test connection, Sync now), so no view dispatches on which button was pressed. Who
may do what lives in :mod:`exchange_ext.web.permissions`. Every successful POST redirects (PRG),
except an htmx request's (request.htmx), answered in place with a fragment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from exchange_ext.engine import held
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.runs import recent_runs
from exchange_ext.jobs import dispatcher, push
from exchange_ext.jobs.notifications import send_setup_emails
from exchange_ext.models import ExchangeConfig, HeldDeletion, MailboxSettings, SyncRun
from exchange_ext.web.config_changes import SyncRunning, save_config
from exchange_ext.web.conflicts import recent_conflicts
from exchange_ext.web.connection_test import probe_config_connection, probe_mailbox_connection
from exchange_ext.web.enrollment import refused_enrollments, set_enabled_resources
from exchange_ext.web.forms import (
    GeneralForm,
    MailboxSettingsForm,
    ResourcesForm,
    SynchronizationForm,
)
from exchange_ext.web.permissions import manager_required
from exchange_ext.web.status_display import StatusDisplay, status_display
from exchange_ext.web.status_page import status_page
from exchange_ext.web.sync_progress import Stage, sync_progress
from psa.i18n.collation import collated
from psa.resources.models import Resource
from psa.resources.permissions import own_resource
from psa.scheduling.selection import fallback_zone_name

SAVED_MESSAGE = _("MS Exchange configuration successfully updated.")
RESOURCES_PER_PAGE = 50


@dataclass(frozen=True)
class AdminTab:
    """A tab of the admin pages' strip (``templates/_tabs.html``); the context's ``tab`` is the
    current one's slug."""

    slug: str
    label: str  # a lazy translation: rendered in the viewer's language
    url_name: str


ADMIN_TABS = (
    AdminTab("general", _("General"), "exchange_ext:general"),
    AdminTab("synchronization", _("Synchronization"), "exchange_ext:synchronization"),
    AdminTab("resources", _("Resources"), "exchange_ext:resources"),
    AdminTab("status", _("Status"), "exchange_ext:status"),
)


# ---- General tab -------------------------------------------------------------------------


@manager_required
def general(request: HttpRequest) -> HttpResponse:
    """The General tab. When enabled, a save first tests the connection with the unsaved
    settings (docs/sync-rules.md, "Configuration changes")."""
    form = GeneralForm(request.POST or None, instance=ExchangeConfig.load())
    context: dict[str, Any] = {
        "tab": "general", "admin_tabs": ADMIN_TABS, "form": form,
        "push_url": push.notification_url(),
    }  # fmt: skip
    if form.is_bound and form.is_valid():
        candidate = form.instance  # the stored row with the posted values, not saved yet
        report = probe_config_connection(candidate) if candidate.enabled else None
        if report is not None and not report.ok:
            form.add_warnings(report.field_errors)
            context["connection_error"] = report.message
        elif _save_general(request, form):
            return redirect("exchange_ext:general")
    status = 400 if form.is_bound else 200
    return render(request, "exchange_ext/general.html", context, status=status)


def _save_general(request: HttpRequest, form: GeneralForm) -> bool:
    """Save through :func:`save_config`; False (with the reason shown) when refused."""
    try:
        outcome = save_config(form.instance, changed=form.changed_fields)
    except SyncRunning as refusal:
        messages.error(request, str(refusal))
        return False
    messages.success(request, SAVED_MESSAGE)
    dispatcher.after_config_saved(form.changed_fields)
    if outcome.resync_reset:
        messages.info(
            request,
            gettext(
                "The server settings changed: every mailbox's items will be re-read on the next "
                "sync (existing items are re-linked, not duplicated)."
            ),
        )
    return True


# ---- Synchronization tab -----------------------------------------------------------------


@manager_required
def synchronization(request: HttpRequest) -> HttpResponse:
    """The Synchronization tab. Saves at any time, even while a sync runs: nothing here moves a
    mailbox (docs/sync-rules.md, "Configuration changes")."""
    config = ExchangeConfig.load()
    form = SynchronizationForm(request.POST or None, instance=config)
    if form.is_bound and form.is_valid():
        # Only this tab's columns: a concurrent General-tab save is not overwritten.
        config.save(update_fields=[*SynchronizationForm.Meta.fields, "updated_at"])
        dispatcher.after_config_saved(form.changed_data)
        messages.success(request, SAVED_MESSAGE)
        return redirect("exchange_ext:synchronization")
    context = {"tab": "synchronization", "admin_tabs": ADMIN_TABS, "form": form, "config": config}
    return render(request, "exchange_ext/synchronization.html", context, status=_status(form))


# ---- Resources tab -----------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRow:
    """One line of the Resources tab (built from the page's single joined query)."""

    resource: Resource
    settings: MailboxSettings | None
    display: StatusDisplay  # the status as SPEC §3.3 tells them apart

    @property
    def enabled(self) -> bool:
        return self.settings is not None and self.settings.sync_enabled

    @property
    def mailbox(self) -> str:
        return (self.settings and self.settings.mailbox) or self.resource.email


@manager_required
def resources(request: HttpRequest) -> HttpResponse:
    """The Resources tab (README, "Configuring the MS Exchange extension"): search (``q``), 50
    per page, a constant number of queries per page."""
    query = request.GET.get("q", "").strip()
    if request.method == "POST":
        _save_enrollment(request, ResourcesForm(request.POST))
        return redirect(_resources_url(query, request.GET.get("page")))
    page = Paginator(_resource_rows(query), RESOURCES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "tab": "resources",
        "admin_tabs": ADMIN_TABS,
        "page": page,
        "rows": _rows_of(page.object_list),
        "query": query,
        "page_query": urlencode({"q": query}) if query else "",
        "viewer_zone": _viewer_zone(request),
        "action": _resources_url(query, page.number),
    }
    return render(request, "exchange_ext/resources.html", context)


def _resource_rows(query: str) -> QuerySet[Resource]:
    """Active resources with their settings in one LEFT JOIN; every word must match."""
    held_rows = HeldDeletion.objects.filter(
        mailbox_settings__resource=OuterRef("pk"), state=HeldDeletion.State.HELD
    )
    rows = Resource.objects.active().select_related("exchange_settings")
    rows = rows.annotate(held_now=Exists(held_rows))
    for word in query.split():
        rows = rows.filter(
            Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(email__icontains=word)
            | Q(exchange_settings__mailbox__icontains=word)
        )
    return rows.order_by(collated("last_name"), collated("first_name"), "pk")


def _rows_of(resources: Any) -> list[ResourceRow]:
    """The page's rows with their status (``held_now``: annotated by :func:`_resource_rows`)."""
    config = ExchangeConfig.load()
    rows = []
    for resource in resources:
        settings = _loaded_settings(resource)
        shown = status_display(settings, held=resource.held_now, config=config)
        rows.append(ResourceRow(resource, settings, shown))
    return rows


def _loaded_settings(resource: Resource) -> MailboxSettings | None:
    try:
        return resource.exchange_settings  # filled by select_related: no query
    except MailboxSettings.DoesNotExist:
        return None


def _save_enrollment(request: HttpRequest, form: ResourcesForm) -> None:
    if not form.is_valid():
        errors = " ".join(form.non_field_errors())
        messages.error(request, gettext("Nothing was saved: %(errors)s") % {"errors": errors})
        return
    disabled_ids = form.disabled_ids
    were_enabled = MailboxSettings.objects.filter(resource_id__in=disabled_ids, sync_enabled=True)
    disabled = were_enabled.count()
    refused = refused_enrollments(form.cleaned_data["enabled"])
    enabled = set_enabled_resources(form.cleaned_data["enabled"], disabled_ids)
    for reason in refused.values():
        messages.error(request, gettext("Not enabled: %(reason)s") % {"reason": reason})
    dispatcher.enqueue_syncs([s.pk for s in enabled], SyncRun.Trigger.RESOURCE_ENABLED)
    failed = send_setup_emails(enabled)
    sent = sorted(s.resource.email for s in enabled if s.resource.email not in failed)
    counts = {"enabled": len(enabled), "disabled": disabled, "sent": ", ".join(sent)}
    if sent:
        text = ngettext(
            "%(enabled)d resource enabled, %(disabled)d disabled; setup email sent to %(sent)s.",
            "%(enabled)d resources enabled, %(disabled)d disabled; setup email sent to %(sent)s.",
            len(enabled),
        )
    else:
        text = ngettext(
            "%(enabled)d resource enabled, %(disabled)d disabled.",
            "%(enabled)d resources enabled, %(disabled)d disabled.",
            len(enabled),
        )
    messages.success(request, text % counts)
    if failed:
        text = gettext("The setup email could not be sent to %(addresses)s.")
        messages.warning(request, text % {"addresses": ", ".join(failed)})


def _resources_url(query: str, page: Any) -> str:
    params = {k: v for k, v in (("q", query), ("page", page)) if v}
    url = reverse("exchange_ext:resources")
    return f"{url}?{urlencode(params)}" if params else url


# ---- Status tab ----------------------------------------------------------------------------


@manager_required
def status(request: HttpRequest) -> HttpResponse:
    """Failing resources, the latest runs, the queue, runs per hour, the sync lag and the
    workers' heartbeat (issues 6 and 15; README, "Background sync and scale-out"); hours and
    days in the viewer's zone."""
    zone = _viewer_zone(request)
    context = {
        "tab": "status",
        "admin_tabs": ADMIN_TABS,
        "page": status_page(zone=ZoneInfo(zone)),
        "viewer_zone": zone,
    }
    return render(request, "exchange_ext/status.html", context)


# ---- A resource's settings: the admin's page and the technician's profile tab --------------


@manager_required
def resource_settings(request: HttpRequest, resource_id: int) -> HttpResponse:
    """The admin's copy of a resource's profile › MS Exchange tab."""
    return _settings_page(request, get_object_or_404(Resource, pk=resource_id), admin=True)


@manager_required
@require_POST
def resource_settings_test(request: HttpRequest, resource_id: int) -> HttpResponse:
    return _test_connection(request, get_object_or_404(Resource, pk=resource_id), admin=True)


@manager_required
@require_POST
def resource_settings_sync(request: HttpRequest, resource_id: int) -> HttpResponse:
    return _request_sync(request, get_object_or_404(Resource, pk=resource_id), admin=True)


@manager_required
@require_GET
def resource_settings_progress(request: HttpRequest, resource_id: int) -> HttpResponse:
    return _progress(request, get_object_or_404(Resource, pk=resource_id), admin=True)


@login_required
def profile_exchange(request: HttpRequest) -> HttpResponse:
    """The technician's own tab (README, "Configuring the MS Exchange extension"); a login without a
    resource gets an explanation."""
    resource = own_resource(request.user)
    if resource is None:
        return _no_resource(request)
    return _settings_page(request, resource, admin=False)


@login_required
@require_POST
def profile_exchange_test(request: HttpRequest) -> HttpResponse:
    resource = own_resource(request.user)
    return _test_connection(request, resource, admin=False) if resource else _no_resource(request)


@login_required
@require_POST
def profile_exchange_sync(request: HttpRequest) -> HttpResponse:
    resource = own_resource(request.user)
    return _request_sync(request, resource, admin=False) if resource else _no_resource(request)


@login_required
@require_GET
def profile_exchange_progress(request: HttpRequest) -> HttpResponse:
    resource = own_resource(request.user)
    return _progress(request, resource, admin=False) if resource else _no_resource(request)


def _settings_page(request: HttpRequest, resource: Resource, *, admin: bool) -> HttpResponse:
    config = ExchangeConfig.load()
    settings = _settings_of(resource)
    form = MailboxSettingsForm(
        request.POST or None,
        instance=settings,
        config=config,
        admin=admin,
        probe=lambda trial: probe_mailbox_connection(trial, config),
    )
    if form.is_bound and form.is_valid():
        form.save()
        mailbox_status.lift_stop(form.instance.pk)
        dispatcher.enqueue_syncs([form.instance.pk], SyncRun.Trigger.SETTINGS_SAVED)
        messages.success(request, gettext("MS Exchange settings saved."))
        return redirect(_settings_urls(resource, admin)["save"])
    return _render_settings(request, form, resource, admin=admin, status=_status(form))


def _test_connection(request: HttpRequest, resource: Resource, *, admin: bool) -> HttpResponse:
    """Probe with the *saved* settings and show the result on the page (fields marked)."""
    config = ExchangeConfig.load()
    settings = _settings_of(resource)
    report = probe_mailbox_connection(settings, config)
    form = MailboxSettingsForm(instance=settings, config=config, admin=admin)
    if report.ok:
        text = gettext("Connection test passed. %(message)s") % {"message": report.message}
    else:
        form.add_warnings(report.field_errors)
        text = gettext("Connection test failed: %(message)s") % {"message": report.message}
    if request.htmx:  # in place: the result area only (without JavaScript: the whole page)
        warnings = getattr(form, "warnings", {})
        fields = [(form[name].label, warning) for name, warning in warnings.items()]
        context = {"ok": report.ok, "text": text.strip(), "fields": fields}
        return render(request, "exchange_ext/_connection_result.html", context)
    (messages.success if report.ok else messages.error)(request, text.strip())
    return _render_settings(request, form, resource, admin=admin)


def _request_sync(request: HttpRequest, resource: Resource, *, admin: bool) -> HttpResponse:
    """Queue a sync at once and record the request (the dispatcher's fallback should the task
    be lost or find the mailbox busy); refused when it could not run. From htmx the answer is
    the progress block (polling until the run is done); otherwise a redirect and a message."""
    settings = _settings_of(resource)
    refusal = ""
    if not ExchangeConfig.load().enabled:
        refusal = gettext("The MS Exchange integration is turned off; nothing syncs.")
    elif not settings.sync_enabled:
        refusal = gettext(
            "Sync is not enabled for this resource. An administrator enables it on the "
            "MS Exchange Resources tab."
        )
    else:
        dispatcher.request_sync([settings.pk], SyncRun.Trigger.SYNC_NOW, timezone.now())
        dispatcher.enqueue_sync(settings.pk, SyncRun.Trigger.SYNC_NOW)
    if request.htmx:
        return _progress(request, resource, admin=admin, refusal=refusal)
    if refusal:
        messages.error(request, refusal)
    else:
        messages.success(request, gettext("Sync requested; it will start within a minute."))
    return redirect(_settings_urls(resource, admin)["save"])


def _progress(
    request: HttpRequest, resource: Resource, *, admin: bool, refusal: str = ""
) -> HttpResponse:
    """The progress block alone (exchange_ext.web.sync_progress): 286 once settled, which
    stops htmx's polling; ``refusal``: why a "Sync now" was refused, shown above it."""
    settings = _settings_of(resource)
    progress = sync_progress(settings, ExchangeConfig.load())
    polled = bool(request.htmx) and progress.stage is Stage.DONE and not refusal
    context = {
        "progress": progress,
        "refusal": refusal,
        "urls": _settings_urls(resource, admin),
        "viewer_zone": _viewer_zone(request),
        # Once done, the page's sync log is refreshed with it (htmx out-of-band swap).
        "oob_log": polled,
        "sync_runs": recent_runs(settings) if polled else [],
    }
    template = "exchange_ext/_sync_progress.html"
    return render(request, template, context, status=progress.status_code)


def _render_settings(
    request: HttpRequest, form: MailboxSettingsForm, resource: Resource, *, admin: bool,
    status: int = 200,
) -> HttpResponse:  # fmt: skip
    held_summary = held.summary(form.instance) if form.instance.pk else None
    context = {
        "form": form,
        "resource": resource,
        "settings": form.instance,
        "config": form.config,
        "urls": _settings_urls(resource, admin),
        "is_admin_page": admin,
        "base_template": "exchange_ext/_layout.html" if admin else "resources/profile_base.html",
        "tab": "resources",
        "admin_tabs": ADMIN_TABS,
        "active_tab": "exchange",
        "sync_runs": recent_runs(form.instance),
        "progress": sync_progress(form.instance, form.config),
        "recent_conflicts": recent_conflicts(form.instance, _viewer_zone(request)),
        "held": held_summary,
        "status_display": status_display(
            form.instance if form.instance.pk else None,
            held=bool(held_summary and held_summary["total"]),
            config=form.config,
        ),
        "viewer_zone": _viewer_zone(request),
    }
    return render(request, "exchange_ext/mailbox_settings.html", context, status=status)


def _settings_urls(resource: Resource, admin: bool) -> dict[str, str]:
    """Where the page's three forms post (its own Save, Test connection and Sync now views)
    and where its progress block polls."""
    suffixes = {"save": "", "test": "_test", "sync": "_sync", "progress": "_progress"}
    if admin:
        return {
            key: reverse(f"exchange_ext:resource_settings{suffix}", args=[resource.pk])
            for key, suffix in suffixes.items()
        }
    return {
        key: reverse(f"exchange_ext_profile:profile_exchange{suffix}")
        for key, suffix in suffixes.items()
    }


def _settings_of(resource: Resource) -> MailboxSettings:
    """The resource's settings, or unsaved defaults (a GET never creates a row)."""
    settings = MailboxSettings.objects.filter(resource=resource).first()
    return settings or MailboxSettings(resource=resource)


def _no_resource(request: HttpRequest) -> HttpResponse:
    return render(request, "exchange_ext/no_resource.html", {"active_tab": "exchange"})


# ---- helpers -----------------------------------------------------------------------------


def _viewer_zone(request: HttpRequest) -> str:
    """Times show in the viewer's own resource zone (the organisation's for admins without)."""
    resource = own_resource(request.user)
    return resource.time_zone if resource else fallback_zone_name()


def _status(form: Any) -> int:
    return 400 if form.is_bound and form.errors else 200
