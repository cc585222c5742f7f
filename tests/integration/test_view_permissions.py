"""Who gets what, for every URL of the PSA UI.

Actors: ``anonymous``; ``owner`` (the technician the objects belong to); ``other`` (another
technician); ``admin`` (superuser with a resource); ``dispatcher`` (holds
``resources.view_all_calendars``); ``nobody`` (a login without a resource or that permission).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse

from psa.extensions.registry import extension_pages_for
from psa.scheduling.models import Appointment, Todo
from tests.builders import (
    make_admin,
    make_appointment,
    make_contact,
    make_dispatcher,
    make_resource,
    make_service_call,
    make_todo,
    make_user,
)

pytestmark = pytest.mark.django_db

ACTORS = ("anonymous", "owner", "other", "admin", "dispatcher", "nobody")


@dataclass
class World:
    owner: object
    appointment: Appointment
    todo: Todo
    call_pk: int
    account_pk: int
    contact_pk: int
    clients: dict[str, Client]


@pytest.fixture
def world() -> World:
    owner = make_resource("owner")
    contact = make_contact()
    users = {
        "owner": owner.user,
        "other": make_resource("other").user,
        "admin": make_admin("admin").user,
        "dispatcher": make_dispatcher("dispatcher").user,
        "nobody": make_user("nobody"),
    }
    clients = {"anonymous": Client()}
    for name, user in users.items():
        clients[name] = Client()
        clients[name].force_login(user)
    return World(
        owner=owner,
        appointment=make_appointment(owner),
        todo=make_todo(owner, account=contact.account),
        call_pk=make_service_call([owner], account=contact.account).pk,
        account_pk=contact.account_id,
        contact_pk=contact.pk,
        clients=clients,
    )


OK, NO, GONE = 200, 403, 302
# Expected status per actor, in ACTORS order minus anonymous (always redirected to login).
EVERYONE = (OK, OK, OK, OK, OK)
OWNER_OR_VIEW_ALL = (OK, NO, OK, OK, NO)
DISPATCH = (NO, NO, OK, OK, NO)
DIRECTORY = (OK, OK, OK, OK, NO)

GET_MATRIX = [
    ("calendar", lambda w: reverse("calendar"), EVERYONE),
    (
        "calendar of owner",
        lambda w: f"{reverse('calendar')}?resource={w.owner.pk}",
        OWNER_OR_VIEW_ALL,
    ),
    ("new appointment", lambda w: reverse("appointment_create"), (OK, OK, OK, OK, NO)),
    (
        "new appointment for owner",
        lambda w: f"{reverse('appointment_create')}?resource={w.owner.pk}",
        OWNER_OR_VIEW_ALL,
    ),
    (
        "edit appointment",
        lambda w: reverse("appointment_edit", args=[w.appointment.pk]),
        OWNER_OR_VIEW_ALL,
    ),
    (
        "delete appointment",
        lambda w: reverse("appointment_delete", args=[w.appointment.pk]),
        OWNER_OR_VIEW_ALL,
    ),
    ("new to-do", lambda w: reverse("todo_create"), (OK, OK, OK, OK, NO)),
    (
        "new to-do for owner",
        lambda w: f"{reverse('todo_create')}?resource={w.owner.pk}",
        OWNER_OR_VIEW_ALL,
    ),
    ("edit to-do", lambda w: reverse("todo_edit", args=[w.todo.pk]), OWNER_OR_VIEW_ALL),
    ("delete to-do", lambda w: reverse("todo_delete", args=[w.todo.pk]), OWNER_OR_VIEW_ALL),
    ("new service call", lambda w: reverse("service_call_create"), DISPATCH),
    (
        "edit service call",
        lambda w: reverse("service_call_edit", args=[w.call_pk]),
        OWNER_OR_VIEW_ALL,
    ),
    ("accounts", lambda w: reverse("crm:account_list"), DIRECTORY),
    ("account", lambda w: reverse("crm:account_detail", args=[w.account_pk]), DIRECTORY),
    ("contacts", lambda w: reverse("crm:contact_list"), DIRECTORY),
    ("contact", lambda w: reverse("crm:contact_detail", args=[w.contact_pk]), DIRECTORY),
    ("profile", lambda w: reverse("profile"), EVERYONE),
    ("django admin", lambda w: reverse("admin:index"), (GONE, GONE, OK, GONE, GONE)),
]

CASES = [
    pytest.param(url, actor, expected[ACTORS.index(actor) - 1], id=f"{name}-{actor}")
    for name, url, expected in GET_MATRIX
    for actor in ACTORS[1:]
]


@pytest.mark.parametrize(("url", "actor", "status"), CASES)
def test_each_page_answers_each_actor_as_the_permission_rules_say(world, url, actor, status):
    assert world.clients[actor].get(url(world)).status_code == status


@pytest.mark.parametrize(("name", "url", "expected"), GET_MATRIX, ids=[r[0] for r in GET_MATRIX])
def test_anonymous_visitors_are_sent_to_the_login_page(world, name, url, expected):
    path = url(world)
    response = world.clients["anonymous"].get(path)
    assert response.status_code == 302
    login = reverse("admin:login") if path.startswith("/admin/") else reverse("login")
    assert response["Location"] == f"{login}?next={quote(path, safe='/')}"


@pytest.mark.parametrize("actor", ACTORS[1:])
def test_extensions_index_is_only_for_holders_of_an_extension_permission(world, actor):
    response = world.clients[actor].get(reverse("extensions"))
    user = response.wsgi_request.user
    assert response.status_code == (200 if extension_pages_for(user) else 403)


def test_anonymous_visitors_of_the_extensions_index_are_sent_to_log_in(world):
    assert world.clients["anonymous"].get(reverse("extensions")).status_code == 302


def test_technician_cannot_open_another_technicians_calendar(world):
    url = f"{reverse('calendar')}?resource={world.owner.pk}"
    assert world.clients["other"].get(url).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        lambda w: reverse("appointment_edit", args=[w.appointment.pk]),
        lambda w: reverse("appointment_delete", args=[w.appointment.pk]),
        lambda w: reverse("todo_edit", args=[w.todo.pk]),
        lambda w: reverse("todo_delete", args=[w.todo.pk]),
        lambda w: reverse("service_call_edit", args=[w.call_pk]),
        lambda w: f"{reverse('appointment_create')}?resource={w.owner.pk}",
        lambda w: f"{reverse('todo_create')}?resource={w.owner.pk}",
        lambda w: reverse("service_call_create"),
    ],
    ids=[
        "edit-appt",
        "delete-appt",
        "edit-todo",
        "delete-todo",
        "edit-call",
        "new-appt",
        "new-todo",
        "new-call",
    ],
)
def test_technician_cannot_write_to_another_technicians_items(world, url):
    response = world.clients["other"].post(url(world), {"title": "Hijacked"})
    assert response.status_code == 403
    assert Appointment.objects.filter(pk=world.appointment.pk, title="Site visit").exists()
    assert Todo.objects.filter(pk=world.todo.pk).exists()


def test_forms_reject_posts_without_a_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner.user)
    url = reverse("appointment_delete", args=[world.appointment.pk])
    assert client.post(url).status_code == 403
    assert Appointment.objects.filter(pk=world.appointment.pk).exists()


def test_login_page_is_public_and_ignores_an_external_next(world):
    client = world.clients["anonymous"]
    assert client.get(reverse("login")).status_code == 200
    response = client.post(
        f"{reverse('login')}?next=https://evil.example/",
        {"username": "owner", "password": "correct horse battery staple"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("calendar")
