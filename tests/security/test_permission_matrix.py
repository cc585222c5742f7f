"""The permission matrix: every URL of the product × every role × GET and POST (SPEC §1, §8, §9).

One row per (URL, method): the status each role gets. A new URL must come with its rows — the
completeness test walks Django's URL resolver and fails on any route the matrix does not list
(and on any row whose route no longer exists). The Django admin (``/admin/…``) is one family,
checked on a few representative pages: only the superuser (staff) gets in.

Roles:

- ``anonymous`` — not logged in;
- ``tech`` — a technician (a resource with a login); ``tech_*`` objects are theirs;
- ``other`` — another technician; ``other_*`` objects are theirs, ``tech_*`` a colleague's;
- ``dispatcher`` — holds ``resources.view_all_calendars`` (``make_dispatcher``);
- ``admin`` — the MS Exchange administrator: holds ``exchange_ext.manage_extension``
  (``make_exchange_admin``), not a superuser and not a dispatcher;
- ``superuser`` — a Django superuser (staff), for the admin family only.

Expected answers: a status code; ``LOGIN`` (302 to ``/accounts/login/?next=<this URL>``); a
path (302 to exactly there, e.g. ``CAL``); a plain ``302`` is a successful POST's redirect (not
to a login page). POSTs carry a minimal, mostly invalid body: an authorised user gets 200, 302
or 400 (form errors) — the request got past the permission checks — and an unauthorised one
403, 405 or ``LOGIN``. ``holes={role: reason}`` on a row marks a known authorisation hole:
the row expects the safe answer, and that role's case runs as ``xfail(strict=True)`` until the
hole is fixed (then the mark must go).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from exchange_ext.engine.runs import start_run
from exchange_ext.models import ExchangeConfig, MailboxSettings
from tests.builders import (
    make_account,
    make_admin,
    make_appointment,
    make_contact,
    make_dispatcher,
    make_resource,
    make_service_call,
    make_todo,
)
from tests.exchange_ext.pages import make_exchange_admin

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "tech", "other", "dispatcher", "admin")
LOGIN = "login"  # 302 to the login page, back to this URL afterwards
ADMIN_LOGIN = "admin login"  # 302 to the Django admin's login page
CAL = "/calendar/"  # 302 to the calendar (which sends anonymous users to log in)
TAB = "/extensions/exchange/general/"  # 302 to the General tab (which refuses non-managers)
OUT = "/accounts/login/"  # 302 to the login page, after logging out
GET, POST = "GET", "POST"
#: What every POST sends: not empty, or views that read ``request.POST or None`` take the POST for
#: a GET and never reach their form's validation.
MINIMAL_BODY = {"permission_matrix": "1"}
Expected = int | str


class Row(NamedTuple):
    path: str  # a template: {name} is an object of the World below
    method: str
    expect: dict[str, Expected]
    holes: dict[str, str]  # role → a known authorisation hole (the row expects the safe answer)


def row(
    path: str,
    method: str,
    anonymous: Expected,
    tech: Expected,
    other: Expected,
    dispatcher: Expected,
    admin: Expected,
    holes: dict[str, str] | None = None,
) -> Row:
    expect = dict(zip(ROLES, (anonymous, tech, other, dispatcher, admin), strict=True))
    return Row(path, method, expect, holes or {})


# fmt: off
MATRIX: list[Row] = [
    #    path template                                      method  anon   tech  other  disp  admin
    # -- home, login, logout ------------------------------------------------------------------
    row("/",                                                GET,    CAL,   CAL,  CAL,  CAL,  CAL),
    row("/",                                                POST,   CAL,   CAL,  CAL,  CAL,  CAL),
    row("/accounts/login/",                                 GET,    200,   200,  200,  200,  200),
    row("/accounts/login/",                                 POST,   200,   200,  200,  200,  200),
    row("/accounts/logout/",                                GET,    405,   405,  405,  405,  405),
    row("/accounts/logout/",                                POST,   OUT,   OUT,  OUT,  OUT,  OUT),
    # -- operators: /metrics needs its token or an allowed address (README, "Monitoring") and
    # is off (404) unless one is configured, whoever is logged in; /healthz is open, GET only
    row("/metrics",                                         GET,    404,   404,  404,  404,  404),
    row("/metrics",                                         POST,   405,   405,  405,  405,  405),
    row("/healthz/",                                        GET,    200,   200,  200,  200,  200),
    row("/healthz/",                                        POST,   405,   405,  405,  405,  405),
    # -- Microsoft Graph's notification URL: no login (Graph has none); the clientState of a
    # subscription held here is the credential (exchange_ext/web/graph_notifications.py)
    row("/extensions/exchange/notifications/graph/",        GET,    405,   405,  405,  405,  405),
    row("/extensions/exchange/notifications/graph/",        POST,   400,   400,  400,  400,  400),
    # -- the header's language switcher: anyone (the login page has it), POST only ----------
    row("/i18n/language/",                                  GET,    405,   405,  405,  405,  405),
    row("/i18n/language/",                                  POST,   "/",   "/",  "/",  "/",  "/"),
    # -- calendar: own items, or everyone's with resources.view_all_calendars ----------------
    row("/calendar/",                                       GET,    LOGIN, 200,  200,  200,  200),
    row("/calendar/",                                       POST,   LOGIN, 405,  405,  405,  405),
    row("/calendar/appointments/new/",                      GET,    LOGIN, 200,  200,  200,  200),
    row("/calendar/appointments/new/",                      POST,   LOGIN, 400,  400,  400,  400),
    row("/calendar/appointments/{tech_appt}/",              GET,    LOGIN, 200,  403,  200,  403),
    row("/calendar/appointments/{tech_appt}/",              POST,   LOGIN, 400,  403,  400,  403),
    row("/calendar/appointments/{other_appt}/",             GET,    LOGIN, 403,  200,  200,  403),
    row("/calendar/appointments/{other_appt}/",             POST,   LOGIN, 403,  400,  400,  403),
    row("/calendar/appointments/{tech_appt}/delete/",       GET,    LOGIN, 200,  403,  200,  403),
    row("/calendar/appointments/{tech_appt}/delete/",       POST,   LOGIN, 302,  403,  302,  403),
    row("/calendar/todos/new/",                             GET,    LOGIN, 200,  200,  200,  200),
    row("/calendar/todos/new/",                             POST,   LOGIN, 400,  400,  400,  400),
    row("/calendar/todos/{tech_todo}/",                     GET,    LOGIN, 200,  403,  200,  403),
    row("/calendar/todos/{tech_todo}/",                     POST,   LOGIN, 400,  403,  400,  403),
    row("/calendar/todos/{tech_todo}/delete/",              GET,    LOGIN, 200,  403,  200,  403),
    row("/calendar/todos/{tech_todo}/delete/",              POST,   LOGIN, 302,  403,  302,  403),
    row("/calendar/service-calls/new/",                     GET,    LOGIN, 403,  403,  200,  403),
    row("/calendar/service-calls/new/",                     POST,   LOGIN, 403,  403,  400,  403),
    row("/calendar/service-calls/{tech_call}/",             GET,    LOGIN, 200,  403,  200,  403),
    row("/calendar/service-calls/{tech_call}/",             POST,   LOGIN, 400,  403,  400,  403),
    # -- CRM directory: read-only, every PSA user -------------------------------------------
    row("/crm/accounts/",                                   GET,    LOGIN, 200,  200,  200,  200),
    row("/crm/accounts/",                                   POST,   LOGIN, 405,  405,  405,  405),
    row("/crm/accounts/{account}/",                         GET,    LOGIN, 200,  200,  200,  200),
    row("/crm/accounts/{account}/",                         POST,   LOGIN, 405,  405,  405,  405),
    row("/crm/contacts/",                                   GET,    LOGIN, 200,  200,  200,  200),
    row("/crm/contacts/",                                   POST,   LOGIN, 405,  405,  405,  405),
    row("/crm/contacts/{contact}/",                         GET,    LOGIN, 200,  200,  200,  200),
    row("/crm/contacts/{contact}/",                         POST,   LOGIN, 405,  405,  405,  405),
    # -- My › Profile: the user's own resource only (no id in the URL) -----------------------
    row("/profile/",                                        GET,    LOGIN, 200,  200,  200,  200),
    row("/profile/",                                        POST,   LOGIN, 400,  400,  400,  400),
    row("/profile/exchange/",                               GET,    LOGIN, 200,  200,  200,  200),
    row("/profile/exchange/",                               POST,   LOGIN, 302,  302,  302,  302),
    row("/profile/exchange/test/",                          GET,    LOGIN, 405,  405,  405,  405),
    row("/profile/exchange/test/",                          POST,   LOGIN, 200,  200,  200,  200),
    row("/profile/exchange/sync/",                          GET,    LOGIN, 405,  405,  405,  405),
    row("/profile/exchange/sync/",                          POST,   LOGIN, 302,  302,  302,  302),
    # A run's items (issue 15): a run of the user's own mailbox; anyone else's is not found
    row("/profile/exchange/runs/{tech_run}/",               GET,    LOGIN, 200,  404,  404,  404),
    row("/profile/exchange/runs/{tech_run}/",               POST,   LOGIN, 405,  405,  405,  405),
    # The live progress block (issue 15): 286 = settled, htmx stops polling (nothing runs here)
    row("/profile/exchange/progress/",                      GET,    LOGIN, 286,  286,  286,  286),
    row("/profile/exchange/progress/",                      POST,   LOGIN, 405,  405,  405,  405),
    # -- Admin › Extensions & Integrations: exchange_ext.manage_extension only ---------------
    row("/extensions/",                                     GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/",                                     POST,   LOGIN, 403,  403,  403,  200),
    # A bare redirect, no content: the General tab it points to refuses whoever it must.
    row("/extensions/exchange/",                            GET,    TAB,   TAB,  TAB,  TAB,  TAB),
    row("/extensions/exchange/",                            POST,   TAB,   TAB,  TAB,  TAB,  TAB),
    row("/extensions/exchange/general/",                    GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/general/",                    POST,   LOGIN, 403,  403,  403,  400),
    row("/extensions/exchange/synchronization/",            GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/synchronization/",            POST,   LOGIN, 403,  403,  403,  400),
    row("/extensions/exchange/resources/",                  GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/resources/",                  POST,   LOGIN, 403,  403,  403,  302),
    row("/extensions/exchange/status/",                     GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/status/",                     POST,   LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/runs/{tech_run}/",            GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/runs/{tech_run}/",            POST,   LOGIN, 403,  403,  403,  405),
    row("/extensions/exchange/runs/{missing}/",             GET,    LOGIN, 403,  403,  403,  404),
    row("/extensions/exchange/resources/{tech_res}/",       GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/resources/{tech_res}/",       POST,   LOGIN, 403,  403,  403,  302),
    row("/extensions/exchange/resources/{other_res}/",      GET,    LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/resources/{other_res}/",      POST,   LOGIN, 403,  403,  403,  302),
    row("/extensions/exchange/resources/{missing}/",        GET,    LOGIN, 403,  403,  403,  404),
    row("/extensions/exchange/resources/{other_res}/test/", GET,    LOGIN, 403,  403,  403,  405),
    row("/extensions/exchange/resources/{other_res}/test/", POST,   LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/resources/{other_res}/sync/", GET,    LOGIN, 403,  403,  403,  405),
    row("/extensions/exchange/resources/{other_res}/sync/", POST,   LOGIN, 403,  403,  403,  302),
    row("/extensions/exchange/resources/{other_res}/progress/", GET,
        LOGIN, 403, 403, 403, 286),
    row("/extensions/exchange/resources/{other_res}/progress/", POST,
        LOGIN, 403, 403, 403, 405),
    row("/extensions/exchange/resources/{missing}/progress/", GET,
        LOGIN, 403, 403, 403, 404),
    row("/extensions/exchange/resources/{other_res}/remove/", GET,  LOGIN, 403,  403,  403,  200),
    row("/extensions/exchange/resources/{other_res}/remove/", POST, LOGIN, 403,  403,  403,  400),
    row("/extensions/exchange/resources/{other_res}/held/confirm/", GET,
        LOGIN, 403, 403, 403, 405),
    row("/extensions/exchange/resources/{other_res}/held/confirm/", POST,
        LOGIN, 403, 403, 403, 302),
    row("/extensions/exchange/resources/{other_res}/held/restore/", GET,
        LOGIN, 403, 403, 403, 405),
    row("/extensions/exchange/resources/{other_res}/held/restore/", POST,
        LOGIN, 403, 403, 403, 302),
    # Preview next sync: a POST that reads Exchange and writes nothing (409: nothing to preview).
    row("/extensions/exchange/resources/{other_res}/preview/", GET,
        LOGIN, 403, 403, 403, 405),
    row("/extensions/exchange/resources/{other_res}/preview/", POST,
        LOGIN, 403, 403, 403, 409),
]
# fmt: on

#: The Django admin, one family: representative pages (the completeness test skips ``admin/``).
ADMIN_ROLES = (*ROLES, "superuser")
ADMIN_FAMILY = [
    "/admin/",
    "/admin/exchange_ext/mailboxsettings/",
    "/admin/axes/accessattempt/",  # login lockouts (SPEC §8: administrators see and lift them)
]


# ---- the world the rows talk about ----------------------------------------------------------


@dataclass
class World:
    users: dict[str, User]
    ids: dict[str, int]

    def url(self, template: str) -> str:
        return template.format(**self.ids)

    def client(self, role: str) -> Client:
        client = Client()
        if role != "anonymous":
            client.force_login(self.users[role])
        return client


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """Built once for the module, inside a transaction rolled back at the end; each test runs in
    its own nested transaction (pytest-django), so a POST that deletes or saves something does
    not leak into the next test."""
    with (
        django_db_blocker.unblock(),
        override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]),
        transaction.atomic(),
    ):
        tech = make_resource("tech")
        other = make_resource("other")
        contact = make_contact(account=make_account())
        users = {
            "tech": tech.user,
            "other": other.user,
            "dispatcher": make_dispatcher("dispatcher").user,
            "admin": make_exchange_admin("xadmin").user,
            "superuser": make_admin("root").user,
        }
        ids = {
            "tech_res": tech.pk,
            "other_res": other.pk,
            "missing": other.pk + 1000,
            "tech_appt": make_appointment(tech).pk,
            "other_appt": make_appointment(other).pk,
            "tech_todo": make_todo(tech, account=contact.account).pk,
            "tech_call": make_service_call([tech], account=contact.account).pk,
            "account": contact.account_id,
            "contact": contact.pk,
            "tech_run": start_run(
                MailboxSettings.objects.create(resource=tech, mailbox=tech.email),
                trigger="manual",
                backend="memory",
            ).pk,
        }
        yield World(users, ids)
        transaction.set_rollback(True)


def assert_answer(response, expected: Expected, path: str) -> None:
    where = f"{response.request['REQUEST_METHOD']} {path}"
    location = response.get("Location", "")
    if expected in (LOGIN, ADMIN_LOGIN):
        login = "/accounts/login/" if expected == LOGIN else "/admin/login/"
        assert (response.status_code, location) == (302, f"{login}?next={quote(path)}"), where
    elif isinstance(expected, str):
        assert (response.status_code, location) == (302, expected), where
    else:
        assert response.status_code == expected, f"{where}: {location}"
        if expected == 302:
            assert not location.startswith(("/accounts/login/?next=", "/admin/login/?next=")), where


CASES = [
    pytest.param(
        r,
        role,
        id=f"{r.method} {r.path} [{role}]",
        marks=[pytest.mark.xfail(strict=True, reason=r.holes[role])] if role in r.holes else [],
    )
    for r in MATRIX
    for role in ROLES
]


@pytest.mark.parametrize(("r", "role"), CASES)
def test_each_url_answers_each_role_as_the_matrix_says(world: World, r: Row, role: str):
    path = world.url(r.path)
    client = world.client(role)
    response = client.get(path) if r.method == GET else client.post(path, MINIMAL_BODY)
    assert_answer(response, r.expect[role], path)


# ---- the matrix lists every URL --------------------------------------------------------------


def _join(prefix: str, route: str) -> str:
    return prefix + (route.removeprefix("^") if prefix else route)


def product_routes(resolver: URLResolver | None = None, prefix: str = "") -> set[str]:
    """Every route the URL resolver serves, as full route strings (``calendar/…/<int:pk>/``)."""
    routes: set[str] = set()
    for entry in (resolver or get_resolver()).url_patterns:
        route = _join(prefix, str(entry.pattern))
        if isinstance(entry, URLResolver):
            routes |= product_routes(entry, route)
        else:
            assert isinstance(entry, URLPattern)
            routes.add(route)
    return routes


def _route_of(template: str) -> str:
    """The route a row's path template is served by (any id will do)."""
    return resolve(re.sub(r"\{\w+\}", "1", template)).route


def test_every_route_of_the_product_is_in_the_matrix_for_get_and_post():
    served = {route for route in product_routes() if not route.startswith("admin/")}
    for method in (GET, POST):
        listed = {_route_of(r.path) for r in MATRIX if r.method == method}
        assert served - listed == set(), f"routes missing from the matrix ({method})"
        assert listed - served == set(), f"matrix rows for routes that no longer exist ({method})"


def test_the_admin_family_is_served_under_admin():
    for path in ADMIN_FAMILY:
        assert resolve(path).route.startswith("admin/"), path


# ---- the Django admin: staff only ------------------------------------------------------------


@pytest.mark.parametrize("method", [GET, POST])
@pytest.mark.parametrize("path", ADMIN_FAMILY)
@pytest.mark.parametrize("role", ADMIN_ROLES)
def test_the_django_admin_requires_a_superuser(world, role, path, method):
    client = world.client(role)
    response = client.get(path) if method == GET else client.post(path, MINIMAL_BODY)
    assert_answer(response, 200 if role == "superuser" else ADMIN_LOGIN, path)


# ---- CSRF --------------------------------------------------------------------------------------


def test_an_extension_form_posted_without_a_csrf_token_is_refused(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    url = "/extensions/exchange/synchronization/"
    data = {"sync_appointments": "on", "import_mode": "none", "past_days": "3"}
    data |= {"recurring_days": "5"}
    assert client.post(url, data).status_code == 403
    assert ExchangeConfig.load().past_days != 3
    # The same post with the page's token gets through: the 403 was the CSRF check's.
    page = client.get(url)
    token = page.context["csrf_token"]
    response = client.post(url, {**data, "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert ExchangeConfig.load().past_days == 3
