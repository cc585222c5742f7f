"""What a calendar request is about: whose calendar, which days, and where to go afterwards.

Query parameters: ``resource`` (a resource id; default the user's own), ``start`` (YYYY-MM-DD;
default the Monday of this week in the resource's time zone) and ``days`` (1–31; default 7).
A malformed ``resource`` is a 400, an unknown one a 404 and someone else's (without
``resources.view_all_calendars``) a 403. A malformed ``start`` or ``days`` falls back to the
default with an explanation, so a stale bookmark still opens a calendar.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.core.exceptions import BadRequest
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from psa.resources.models import Organisation, Resource
from psa.resources.permissions import own_resource, require_resource_access
from psa.scheduling.agenda import DEFAULT_DAYS, MAX_DAYS, AgendaWindow
from psa.scheduling.localtime import week_start

# Far enough for any real calendar, near enough that no local-midnight computation overflows.
_FIRST_YEAR, _LAST_YEAR = 1900, 2999


def requested_resource(request: HttpRequest) -> Resource | None:
    """The resource named by ``?resource=`` (checked) or the user's own; None if they have none."""
    raw = request.GET.get("resource", "").strip()
    if not raw:
        return own_resource(request.user)
    if not raw.isdigit():
        raise BadRequest(_("The resource must be given by its number."))
    resource = get_object_or_404(Resource, pk=int(raw))
    require_resource_access(request.user, resource)
    return resource


def requested_window(request: HttpRequest, resource: Resource) -> tuple[AgendaWindow, list[str]]:
    """The days asked for, and the reasons any parameter was replaced by its default."""
    problems: list[str] = []
    days = _parse_days(request.GET.get("days"))
    if days is None:
        problems.append(
            _("Showing %(days)s days: “days” must be a number from 1 to %(max)s.")
            % {"days": DEFAULT_DAYS, "max": MAX_DAYS}
        )
        days = DEFAULT_DAYS
    raw_start = request.GET.get("start", "")
    start = _parse_date(raw_start) if raw_start else None
    if raw_start and start is None:
        problems.append(_("Showing this week: “start” must be a date like 2026-03-30."))
    if start is None:
        return AgendaWindow.this_week(resource.tzinfo, days), problems
    return AgendaWindow(start, days), problems


def _parse_days(raw: str | None) -> int | None:
    if not raw:
        return DEFAULT_DAYS
    if raw.isdigit() and 1 <= int(raw) <= MAX_DAYS:
        return int(raw)
    return None


def _parse_date(raw: str) -> dt.date | None:
    """The date, or None when malformed or out of range."""
    try:
        date = dt.date.fromisoformat(raw)
    except ValueError:
        return None
    return date if _FIRST_YEAR <= date.year <= _LAST_YEAR else None


def agenda_url(resource: Resource, day: dt.date | None = None, days: int | None = None) -> str:
    """The agenda of ``resource``, on the week of ``day`` when given."""
    params: dict[str, object] = {"resource": resource.pk}
    if day is not None:
        params["start"] = week_start(day).isoformat()
    if days is not None and days != DEFAULT_DAYS:
        params["days"] = days
    return f"{reverse('calendar')}?{urlencode(params)}"


def agenda_url_for(resource: Resource, instant: dt.datetime) -> str:
    """The agenda of ``resource`` on the week ``instant`` falls in, in their time zone."""
    return agenda_url(resource, instant.astimezone(resource.tzinfo).date())


def safe_next(request: HttpRequest, default: str) -> str:
    """``?next=`` / POSTed ``next`` when it points into this site, otherwise ``default``.

    Guards against open redirects: only same-host (or relative) URLs are followed.
    """
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return candidate if candidate and allowed else default


def requested_day(request: HttpRequest) -> dt.date | None:
    """``?date=YYYY-MM-DD`` (the agenda's "add" links), or None."""
    return _parse_date(request.GET.get("date", ""))


def fallback_zone_name() -> str:
    """The zone for users without a resource: the organisation's default, else UTC."""
    organisation = Organisation.objects.order_by("pk").first()
    return organisation.default_time_zone if organisation is not None else "UTC"
