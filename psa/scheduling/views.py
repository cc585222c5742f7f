"""The calendar: a resource's agenda and the pages that create, edit and delete its items.

Who may do what (the rules live in ``psa.resources.permissions``):

- The agenda, appointments and to-dos of a resource: that resource's user, or a holder of
  ``resources.view_all_calendars`` (administrators, dispatchers). Anyone else gets a 403.
- Read-only appointments (imported meetings the resource only attends) are shown on a read-only
  page; posting to their edit or delete page is a 403.
- Service calls: dispatchers and administrators create them and edit any of them; a technician
  edits the calls they are assigned to (status, times, tickets, description, location) but
  cannot change who is assigned — handing work to colleagues or dropping it is a dispatch
  decision.

Every write goes through a ``do_*`` action with ``Origin.by_user(request.user)``; a
``ValidationError`` it raises lands on the form, which keeps everything the user typed. Form
times are the resource's wall-clock times; for a service call (several resources) the acting
user's own zone, else the first assigned resource's, else UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from psa.audit.origin import Origin
from psa.crm.models import Account
from psa.form_errors import add_action_errors
from psa.i18n.collation import collated
from psa.resources.models import Resource
from psa.resources.permissions import (
    can_dispatch,
    can_view_all_calendars,
    own_resource,
    require_dispatcher,
    require_resource_access,
    require_service_call_access,
)
from psa.scheduling import actions
from psa.scheduling.agenda import build_agenda
from psa.scheduling.forms import AppointmentForm, ServiceCallForm, TodoForm
from psa.scheduling.models import Appointment, ServiceCall, Todo
from psa.scheduling.selection import (
    agenda_url_for,
    fallback_zone_name,
    requested_day,
    requested_resource,
    requested_window,
    safe_next,
)

Item = Appointment | ServiceCall | Todo
#: An item's kind as extensions name it (psa/extensions/registry.py, "Item panels").
_ITEM_KINDS: dict[type, str] = {
    Appointment: "appointment",
    ServiceCall: "service_call",
    Todo: "todo",
}


@dataclass(frozen=True)
class DeleteTexts:
    """What the delete page of one kind of item says: whole sentences, each translated."""

    title: str
    question: str
    done: str


@login_required
@require_GET
def agenda(request: HttpRequest) -> HttpResponse:
    """A resource's items over a range of days, in the resource's time zone."""
    resource = requested_resource(request)
    choices = (
        Resource.objects.active().order_by(collated("last_name"), collated("first_name"), "pk")
        if can_view_all_calendars(request.user)
        else None
    )
    if resource is None:
        return render(request, "calendar/no_resource.html", {"choices": choices})
    window, problems = requested_window(request, resource)
    for problem in problems:
        messages.warning(request, problem)
    context = {
        "agenda": build_agenda(resource, window),
        "resource": resource,
        "choices": choices,
        "can_dispatch": can_dispatch(request.user),
    }
    return render(request, "calendar/agenda.html", context)


@login_required
def appointment_create(request: HttpRequest) -> HttpResponse:
    resource = _resource_to_schedule(request)
    form = AppointmentForm(_posted(request), tz=resource.tzinfo, initial=_day_initial(request))
    created = _submit(
        request,
        form,
        lambda: actions.do_create_appointment(
            Origin.by_user(request.user), resource=resource, **form.cleaned_data
        ),
        _("Appointment created."),
    )
    if created is not None:
        return redirect(safe_next(request, agenda_url_for(resource, created.start)))
    return _render_form(request, form, resource.tzinfo, _("New appointment"), resource)


@login_required
def appointment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = _appointment(request, pk)
    if appointment.read_only:
        return _read_only(request, appointment)
    form = AppointmentForm(_posted(request), tz=appointment.resource.tzinfo, item=appointment)
    done = _submit(
        request,
        form,
        lambda: _update(actions.do_update_appointment, request, appointment, form.cleaned_data),
        _("Appointment saved."),
    )
    if done is not None:
        return redirect(safe_next(request, agenda_url_for(appointment.resource, done.start)))
    delete_url = reverse("appointment_delete", args=[pk])
    return _render_form(
        request,
        form,
        appointment.resource.tzinfo,
        _("Edit appointment"),
        appointment.resource,
        delete_url,
        item=appointment,
    )


@login_required
def appointment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = _appointment(request, pk)
    if appointment.read_only:
        raise PermissionDenied(_("This appointment is read-only."))
    texts = DeleteTexts(
        title=_("Delete appointment"),
        question=_("Delete this appointment?"),
        done=_("The appointment was deleted."),
    )
    return _confirm_delete(
        request, appointment, appointment.resource, actions.do_delete_appointment, texts
    )


@login_required
def todo_create(request: HttpRequest) -> HttpResponse:
    resource = _resource_to_schedule(request)
    initial = _day_initial(request) | _account_initial(request)
    form = TodoForm(_posted(request), tz=resource.tzinfo, initial=initial)
    created = _submit(
        request,
        form,
        lambda: actions.do_create_todo(
            Origin.by_user(request.user), resource=resource, **form.action_fields(timezone.now())
        ),
        _("To-do created."),
    )
    if created is not None:
        return redirect(safe_next(request, agenda_url_for(resource, created.start)))
    return _render_form(request, form, resource.tzinfo, _("New to-do"), resource)


@login_required
def todo_edit(request: HttpRequest, pk: int) -> HttpResponse:
    todo = _todo(request, pk)
    form = TodoForm(
        _posted(request), tz=todo.resource.tzinfo, item=todo, initial=_account_initial(request)
    )
    done = _submit(
        request,
        form,
        lambda: _update(actions.do_update_todo, request, todo, form.action_fields(timezone.now())),
        _("To-do saved."),
    )
    if done is not None:
        return redirect(safe_next(request, agenda_url_for(todo.resource, done.start)))
    delete_url = reverse("todo_delete", args=[pk])
    return _render_form(
        request, form, todo.resource.tzinfo, _("Edit to-do"), todo.resource, delete_url, item=todo
    )


@login_required
def todo_delete(request: HttpRequest, pk: int) -> HttpResponse:
    todo = _todo(request, pk)
    texts = DeleteTexts(
        title=_("Delete to-do"),
        question=_("Delete this to-do?"),
        done=_("The to-do was deleted."),
    )
    return _confirm_delete(request, todo, todo.resource, actions.do_delete_todo, texts)


@login_required
def service_call_create(request: HttpRequest) -> HttpResponse:
    """Dispatchers only; the acting user's resource (if any) is pre-ticked as assigned."""
    require_dispatcher(request.user)
    tz = _service_call_zone(request, None)
    own = own_resource(request.user)
    initial = _day_initial(request) | ({"resources": [own]} if own else {})
    form = ServiceCallForm(_posted(request), tz=tz, initial=initial)
    created = _submit(
        request,
        form,
        lambda: actions.do_create_service_call(
            Origin.by_user(request.user), **form.action_fields()
        ),
        _("Service call created."),
    )
    if created is not None:
        return redirect(safe_next(request, _service_call_agenda(request, created)))
    return _render_form(request, form, tz, _("New service call"))


@login_required
def service_call_edit(request: HttpRequest, pk: int) -> HttpResponse:
    call = get_object_or_404(ServiceCall.objects.select_related("account"), pk=pk)
    require_service_call_access(request.user, call)
    tz = _service_call_zone(request, call)
    form = ServiceCallForm(
        _posted(request), tz=tz, item=call, can_assign=can_dispatch(request.user)
    )
    done = _submit(
        request,
        form,
        lambda: _update(actions.do_update_service_call, request, call, form.action_fields()),
        _("Service call saved."),
    )
    if done is not None:
        return redirect(safe_next(request, _service_call_agenda(request, call)))
    return _render_form(request, form, tz, _("Edit service call"), item=call)


# --- shared pieces -------------------------------------------------------------------------


def _posted(request: HttpRequest) -> Any:
    return request.POST if request.method == "POST" else None


def _resource_to_schedule(request: HttpRequest) -> Resource:
    """Whose calendar a new item goes on: ``?resource=`` (checked) or the user's own."""
    resource = requested_resource(request)
    if resource is None:
        raise PermissionDenied(_("Your login is not linked to a PSA resource."))
    return resource


def _appointment(request: HttpRequest, pk: int) -> Appointment:
    appointment = get_object_or_404(Appointment.objects.select_related("resource"), pk=pk)
    require_resource_access(request.user, appointment.resource)
    return appointment


def _todo(request: HttpRequest, pk: int) -> Todo:
    todo = get_object_or_404(Todo.objects.select_related("resource"), pk=pk)
    require_resource_access(request.user, todo.resource)
    return todo


def _service_call_zone(request: HttpRequest, call: ServiceCall | None) -> ZoneInfo:
    resource = own_resource(request.user)
    if resource is None and call is not None:
        resource = call.resources.first()
    return resource.tzinfo if resource is not None else ZoneInfo(fallback_zone_name())


def _service_call_agenda(request: HttpRequest, call: ServiceCall) -> str:
    """Back to the agenda the call is on: the user's own if assigned, else the first assignee's."""
    assigned = list(call.resources.all())
    own = next((r for r in assigned if r.user_id == request.user.pk), None)
    resource = own or (assigned[0] if assigned and can_dispatch(request.user) else None)
    return agenda_url_for(resource, call.start) if resource else reverse("calendar")


def _day_initial(request: HttpRequest) -> dict[str, Any]:
    """Start and end for an item added from a day of the agenda: 09:00–10:00 that day."""
    day = requested_day(request)
    if day is None:
        return {}
    nine = dt.datetime.combine(day, dt.time(9))
    return {"start": nine, "end": nine + dt.timedelta(hours=1)}


def _account_initial(request: HttpRequest) -> dict[str, Any]:
    """A to-do's account preset by ``?account=<id>``: the contact list then offers its contacts
    (static/psa.js asks for the form this way when the account changes). Anything else in the
    parameter is ignored."""
    value = request.GET.get("account", "")
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        return {}
    account = Account.objects.filter(pk=int(value)).first()
    return {"account": account} if account is not None else {}


def _update(write: Callable[..., Any], request: HttpRequest, item: Item, fields: Any) -> Item:
    write(Origin.by_user(request.user), item, **fields)
    return item


def _submit(
    request: HttpRequest, form: forms.Form, write: Callable[[], Item], message: str
) -> Item | None:
    """Run ``write`` for a valid POST; the item written, or None (errors are on the form)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        item = write()
    except ValidationError as error:
        add_action_errors(form, error)
        return None
    messages.success(request, message)
    return item


def _render_form(
    request: HttpRequest,
    form: forms.Form,
    tz: ZoneInfo,
    heading: str,
    resource: Resource | None = None,
    delete_url: str | None = None,
    *,
    item: Item | None = None,
) -> HttpResponse:
    """The item form page; ``item`` (an edit): its extensions' panels show under the form."""
    context = {
        "form": form,
        "heading": heading,
        "time_zone": tz.key,
        "resource": resource,
        "delete_url": delete_url,
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "cancel_url": safe_next(request, reverse("calendar")),
        "item": item,
        "item_kind": _ITEM_KINDS.get(type(item), ""),
    }
    return render(request, "calendar/item_form.html", context, status=_form_status(form))


def _form_status(form: forms.Form) -> int:
    # A rejected POST answers 400 so scripts and tests see the failure; browsers show the form.
    return 400 if form.is_bound and form.errors else 200


def _read_only(request: HttpRequest, appointment: Appointment) -> HttpResponse:
    if request.method == "POST":
        raise PermissionDenied(_("This appointment is read-only."))
    return render(request, "calendar/appointment_detail.html", {"appointment": appointment})


def _confirm_delete(
    request: HttpRequest,
    item: Item,
    resource: Resource,
    delete: Callable[[Origin, Any], None],
    texts: DeleteTexts,
) -> HttpResponse:
    """GET: ask; POST: delete through ``delete`` and go back to the agenda."""
    back = safe_next(request, agenda_url_for(resource, item.start))
    if request.method == "POST":
        delete(Origin.by_user(request.user), item)
        messages.success(request, texts.done)
        return redirect(back)
    context = {
        "item": item,
        "title": texts.title,
        "question": texts.question,
        "cancel_url": back,
        "next": request.GET.get("next", ""),
    }
    return render(request, "calendar/confirm_delete.html", context)
