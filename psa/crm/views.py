"""The CRM directory: accounts and contacts, read-only, for every PSA user.

Open to any logged-in user who has a Resource or ``resources.view_all_calendars`` (see
``psa.resources.permissions.can_use_directory``); others get a 403. Lists search with ``?q=``
and paginate with ``?page=``; a page number out of range shows the last page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from psa.crm.models import Account, Contact
from psa.i18n.collation import collated
from psa.resources.permissions import own_resource, require_directory_access
from psa.scheduling.models import ServiceCall
from psa.scheduling.selection import fallback_zone_name

PAGE_SIZE = 25
# Names in the readers' order (docs/i18n.md, "Sorted lists"), as the models' Meta.ordering.
CONTACT_ORDER = (collated("last_name"), collated("first_name"), "pk")
ACTIVE_FILTERS = {"active": Q(active=True), "inactive": Q(active=False), "all": Q()}


@login_required
@require_GET
def account_list(request: HttpRequest) -> HttpResponse:
    """Accounts whose name or city contains ``?q=``."""
    require_directory_access(request.user)
    query = request.GET.get("q", "").strip()
    accounts = Account.objects.select_related("account_manager").order_by(collated("name"), "pk")
    if query:
        accounts = accounts.filter(Q(name__icontains=query) | Q(city__icontains=query))
    context = {"page": _page(request, accounts), "q": query}
    return render(request, "crm/account_list.html", context)


@login_required
@require_GET
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An account with its contacts, opportunities, open service calls and open to-dos."""
    require_directory_access(request.user)
    account = get_object_or_404(Account.objects.select_related("account_manager"), pk=pk)
    open_calls = account.service_calls.exclude(
        status__in=[ServiceCall.Status.COMPLETE, ServiceCall.Status.CANCELLED]
    ).prefetch_related("resources", "tickets")
    context = {
        "account": account,
        "contacts": account.contacts.order_by(*CONTACT_ORDER),
        "opportunities": account.opportunities.select_related("owner", "contact"),
        "service_calls": open_calls,
        "todos": account.todos.filter(completed_at=None).select_related("resource", "contact"),
        "time_zone": _viewer_zone(request),
    }
    return render(request, "crm/account_detail.html", context)


@login_required
@require_GET
def contact_list(request: HttpRequest) -> HttpResponse:
    """Contacts whose name, email or account contains ``?q=``; ``?active=active|inactive|all``."""
    require_directory_access(request.user)
    query = request.GET.get("q", "").strip()
    active = request.GET.get("active", "active")
    if active not in ACTIVE_FILTERS:
        active = "active"
    contacts = (
        Contact.objects.select_related("account")
        .filter(ACTIVE_FILTERS[active])
        .order_by(*CONTACT_ORDER)
    )
    if query:
        contacts = contacts.filter(_contact_search(query))
    context = {"page": _page(request, contacts), "q": query, "active": active}
    return render(request, "crm/contact_list.html", context)


@login_required
@require_GET
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_directory_access(request.user)
    contact = get_object_or_404(Contact.objects.select_related("account"), pk=pk)
    context = {
        "contact": contact,
        "todos": contact.todos.filter(completed_at=None).select_related("resource"),
        "opportunities": contact.opportunities.select_related("owner"),
        "time_zone": _viewer_zone(request),
    }
    return render(request, "crm/contact_detail.html", context)


def _contact_search(query: str) -> Q:
    return (
        Q(first_name__icontains=query)
        | Q(last_name__icontains=query)
        | Q(email__icontains=query)
        | Q(email2__icontains=query)
        | Q(email3__icontains=query)
        | Q(account__name__icontains=query)
    )


def _page(request: HttpRequest, items: QuerySet) -> Page:
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def _viewer_zone(request: HttpRequest) -> str:
    """Times on CRM pages are shown in the viewer's own zone (the organisation's for users
    without a resource)."""
    resource = own_resource(request.user)
    return resource.time_zone if resource is not None else fallback_zone_name()
