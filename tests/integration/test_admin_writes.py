"""The Django admin writes through the PSA's actions: every add, change, delete, bulk delete
and inline row is audited with the user's origin and announced after commit
(``psa/audit/admin_writes.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import models
from django.forms.models import model_to_dict
from django.test import Client

from psa.audit.models import AuditEntry
from psa.audit.signals import psa_item_changed
from psa.crm.models import Account, Contact, Opportunity
from psa.resources.models import Resource
from psa.scheduling.models import Appointment, ServiceCall, Todo
from tests.builders import (
    make_account,
    make_admin,
    make_appointment,
    make_contact,
    make_opportunity,
    make_resource,
    make_service_call,
    make_todo,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss() -> Resource:
    return make_admin()


@pytest.fixture
def client(boss: Resource) -> Client:
    client = Client()
    client.force_login(boss.user)  # client.login is refused by django-axes
    return client


@pytest.fixture
def signals() -> Iterator[list[tuple[type, str, str, Any]]]:
    seen: list[tuple[type, str, str, Any]] = []

    def receiver(sender, instance, action, origin, changes, **kwargs):
        seen.append((sender, str(instance.pk), action, origin))

    psa_item_changed.connect(receiver, dispatch_uid="test_admin_writes")
    yield seen
    psa_item_changed.disconnect(dispatch_uid="test_admin_writes")


def url(model: type[models.Model], view: str = "", pk: Any = None) -> str:
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    return base + (f"{pk}/{view}/" if pk is not None else view + ("/" if view else ""))


def form_data(obj: models.Model, names: tuple[str, ...], **overrides: Any) -> dict[str, Any]:
    """What the admin form of ``obj`` posts for ``names``, with ``overrides`` (model values)."""
    values = model_to_dict(obj, fields=names) | overrides
    data: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dt.datetime):  # the admin's split widget, in UTC (TIME_ZONE)
            value = value.astimezone(dt.UTC)
            data[f"{name}_0"], data[f"{name}_1"] = value.date().isoformat(), value.strftime("%X")
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, models.Model):
            data[name] = value.pk
        elif isinstance(value, list):
            data[name] = [v.pk if isinstance(v, models.Model) else v for v in value]
        else:
            data[name] = "" if value is None else value
    return data


def audit(model: type[models.Model], action: str) -> list[AuditEntry]:
    label = model._meta.label_lower
    return list(AuditEntry.objects.filter(model=label, action=action).order_by("id"))


@dataclass
class Case:
    """One model's admin: how to build a row, its form's fields, and a change to make."""

    model: type[models.Model]
    make: Callable[[Resource], models.Model]
    names: tuple[str, ...]
    change: Callable[[models.Model], dict[str, Any]]  # overrides (model values)
    expected: Callable[[models.Model, dict[str, Any]], dict[str, list[Any]]]
    inline: dict[str, Any] | None = None  # management form of the inlines, if any


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


ACCOUNT_INLINE = {
    "contacts-TOTAL_FORMS": "0",
    "contacts-INITIAL_FORMS": "0",
    "contacts-MIN_NUM_FORMS": "0",
    "contacts-MAX_NUM_FORMS": "1000",
}

CASES = {
    "appointment": Case(
        Appointment,
        lambda boss: make_appointment(make_resource()),
        ("resource", "title", "description", "start", "end", "location", "show_as", "origin"),
        lambda obj: {"title": "Moved", "end": obj.end + dt.timedelta(hours=1)},
        lambda obj, new: {
            "title": [obj.title, "Moved"],
            "end": [_iso(obj.end), _iso(new["end"])],
        },
    ),
    "service call": Case(
        ServiceCall,
        lambda boss: make_service_call([make_resource()]),
        ("account", "description", "start", "end", "status", "resources"),
        lambda obj: {"status": "scheduled", "resources": [*obj.resources.all(), make_resource()]},
        lambda obj, new: {
            "status": ["new", "scheduled"],
            "resources": [
                sorted(r.pk for r in obj.resources.all()),
                sorted(r.pk for r in new["resources"]),
            ],
        },
    ),
    "to-do": Case(
        Todo,
        lambda boss: make_todo(make_resource()),
        ("account", "resource", "action_type", "description", "start", "end"),
        lambda obj: {"resource": make_resource(), "description": "Call again"},
        lambda obj, new: {
            "resource": [obj.resource_id, new["resource"].pk],
            "description": [obj.description, "Call again"],
        },
    ),
    "contact": Case(
        Contact,
        lambda boss: make_contact(),
        ("account", "first_name", "last_name", "email", "active"),
        lambda obj: {"active": False, "email": "new@client.test"},
        lambda obj, new: {"active": [True, False], "email": [obj.email, "new@client.test"]},
    ),
    "account": Case(
        Account,
        lambda boss: make_account(),
        ("name", "street", "city", "phone", "account_manager", "active"),
        lambda obj: {"account_manager": make_resource()},
        lambda obj, new: {"account_manager": [None, new["account_manager"].pk]},
        inline=ACCOUNT_INLINE,
    ),
    "opportunity": Case(
        Opportunity,
        lambda boss: make_opportunity(make_account(), make_resource()),
        ("account", "owner", "title", "stage"),
        lambda obj: {"owner": make_resource()},
        lambda obj, new: {"owner": [obj.owner_id, new["owner"].pk]},
    ),
    "resource": Case(
        Resource,
        lambda boss: make_resource(),
        ("user", "first_name", "last_name", "email", "time_zone", "active"),
        lambda obj: {"active": False},
        lambda obj, new: {"active": [True, False]},
    ),
}


def _fresh_data(case: Case, template: models.Model) -> dict[str, Any]:
    """Add-form data like ``template`` but unique where the model needs it."""
    overrides: dict[str, Any] = {}
    if case.model is Account:
        overrides["name"] = "Fresh account"
    if case.model is Resource:
        overrides |= {"user": make_user(), "email": "fresh@example.test"}
    return form_data(template, case.names, **overrides) | (case.inline or {})


@pytest.mark.parametrize("name", CASES)
def test_adding_in_the_admin_is_an_audited_create_by_the_user(
    name, client, boss, signals, django_capture_on_commit_callbacks
):
    case = CASES[name]
    template = case.make(boss)
    before = {obj.pk for obj in case.model._default_manager.all()}

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url(case.model, "add"), _fresh_data(case, template))
    assert response.status_code == 302, response.context and response.context["errors"]

    (created,) = case.model._default_manager.exclude(pk__in=before)
    (entry,) = [e for e in audit(case.model, "create") if e.object_id == str(created.pk)]
    assert (entry.origin_kind, entry.user_id) == ("user", boss.user_id)
    assert all(old is None for old, _ in entry.changes.values())
    assert set(case.names) <= set(entry.changes)
    assert not [s for s in signals if s[1] == str(created.pk)]  # nothing before the commit
    for callback in callbacks:
        callback()
    assert (case.model, str(created.pk), "create") in [s[:3] for s in signals]


@pytest.mark.parametrize("name", CASES)
def test_changing_in_the_admin_records_the_changed_fields_as_old_and_new(
    name, client, boss, signals, django_capture_on_commit_callbacks
):
    case = CASES[name]
    obj = case.make(boss)
    overrides = case.change(obj)
    expected = case.expected(obj, overrides)
    data = form_data(obj, case.names, **overrides) | (case.inline or {})

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(case.model, "change", obj.pk), data)
    assert response.status_code == 302, response.context and response.context["errors"]

    (entry,) = [e for e in audit(case.model, "update") if e.object_id == str(obj.pk)]
    assert entry.changes == expected
    assert (entry.origin_kind, entry.user_id) == ("user", boss.user_id)
    sent = [s for s in signals if s[:3] == (case.model, str(obj.pk), "update")]
    assert [origin.user_id for *_, origin in sent] == [boss.user_id]


@pytest.mark.parametrize("name", CASES)
def test_deleting_in_the_admin_is_an_audited_delete(
    name, client, boss, signals, django_capture_on_commit_callbacks
):
    case = CASES[name]
    obj = case.make(boss)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(case.model, "delete", obj.pk), {"post": "yes"})
    assert response.status_code == 302

    assert not case.model._default_manager.filter(pk=obj.pk).exists()
    (entry,) = [e for e in audit(case.model, "delete") if e.object_id == str(obj.pk)]
    assert (entry.origin_kind, entry.user_id) == ("user", boss.user_id)
    assert all(new is None for _, new in entry.changes.values())  # what it was: [old, None]
    assert (case.model, str(obj.pk), "delete") in [s[:3] for s in signals]


@pytest.mark.parametrize("name", CASES)
def test_bulk_delete_in_the_admin_audits_each_object(
    name, client, boss, signals, django_capture_on_commit_callbacks
):
    case = CASES[name]
    objs = [case.make(boss), case.make(boss)]
    pks = [str(obj.pk) for obj in objs]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url(case.model),
            {"action": "delete_selected", "_selected_action": pks, "post": "yes"},
        )
    assert response.status_code == 302

    assert not case.model._default_manager.filter(pk__in=pks).exists()
    deleted = [e for e in audit(case.model, "delete") if e.object_id in pks]
    assert sorted(e.object_id for e in deleted) == sorted(pks)
    assert {(e.origin_kind, e.user_id) for e in deleted} == {("user", boss.user_id)}
    sent = {s[1] for s in signals if s[:1] == (case.model,) and s[2] == "delete"}
    assert set(pks) <= sent


@pytest.mark.parametrize("name", CASES)
def test_invalid_admin_input_saves_and_records_nothing(
    name, client, boss, signals, django_capture_on_commit_callbacks
):
    case = CASES[name]
    obj = case.make(boss)
    entries = AuditEntry.objects.count()
    required = next(n for n in case.names if not case.model._meta.get_field(n).blank)
    data = form_data(obj, case.names) | (case.inline or {})
    data.pop(required, None)
    data.pop(f"{required}_0", None)

    with django_capture_on_commit_callbacks(execute=True):
        changed = client.post(url(case.model, "change", obj.pk), data)
        added = client.post(url(case.model, "add"), data)

    assert changed.status_code == added.status_code == 200  # the form again, with errors
    assert AuditEntry.objects.count() == entries
    assert model_to_dict(case.model._default_manager.get(pk=obj.pk)) == model_to_dict(obj)
    assert signals == []


def test_an_account_inline_contact_is_created_changed_and_deleted_through_the_actions(
    client, boss, django_capture_on_commit_callbacks
):
    account = make_account()
    kept, gone = make_contact(account), make_contact(account)
    names = ("first_name", "last_name", "title", "email", "business_phone", "active")
    data = form_data(account, CASES["account"].names) | {
        "contacts-TOTAL_FORMS": "3",
        "contacts-INITIAL_FORMS": "2",
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "1000",
    }
    rows = [
        form_data(kept, names, title="CTO") | {"id": kept.pk, "account": account.pk},
        form_data(gone, names) | {"id": gone.pk, "account": account.pk, "DELETE": "on"},
        {"first_name": "New", "last_name": "Person", "email": "new@client.test", "active": "on"},
    ]
    for i, row in enumerate(rows):
        data |= {f"contacts-{i}-{key}": value for key, value in row.items()}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(Account, "change", account.pk), data)
    assert response.status_code == 302, response.context and response.context["errors"]

    new = Contact.objects.get(last_name="Person")
    assert new.account == account
    by_user = AuditEntry.objects.filter(model="crm.contact", user_id=boss.user_id)
    assert {(e.action, e.object_id) for e in by_user} == {
        ("update", str(kept.pk)),
        ("delete", str(gone.pk)),
        ("create", str(new.pk)),
    }
    assert by_user.get(action="update").changes == {"title": ["", "CTO"]}
    assert not Contact.objects.filter(pk=gone.pk).exists()
    # The account itself did not change: no entry for it.
    assert not AuditEntry.objects.filter(model="crm.account", user_id=boss.user_id).exists()


def test_an_account_added_with_an_inline_contact_audits_both(client, boss):
    template = make_account()
    data = _fresh_data(CASES["account"], template) | {
        "contacts-TOTAL_FORMS": "1",
        "contacts-0-last_name": "Inline",
        "contacts-0-active": "on",
    }

    response = client.post(url(Account, "add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    person = Contact.objects.get(last_name="Inline")
    assert person.account.name == "Fresh account"
    by_user = AuditEntry.objects.filter(user_id=boss.user_id, action="create")
    assert set(by_user.values_list("model", "object_id")) == {
        ("crm.account", str(person.account_id)),
        ("crm.contact", str(person.pk)),
    }


def test_an_opportunity_won_in_the_admin_is_closed_by_the_action(client, boss):
    deal = make_opportunity(make_account(), make_resource())
    data = form_data(deal, CASES["opportunity"].names, stage="won")

    response = client.post(url(Opportunity, "change", deal.pk), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    (entry,) = AuditEntry.objects.filter(model="crm.opportunity", user_id=boss.user_id)
    assert entry.changes == {"stage": ["prospect", "won"], "closed": [False, True]}


def test_a_service_call_resources_are_written_once_by_the_action(client, boss):
    first, second = make_resource(), make_resource()
    call = make_service_call([first])
    data = form_data(call, CASES["service call"].names, resources=[second])

    response = client.post(url(ServiceCall, "change", call.pk), data)

    assert response.status_code == 302
    assert list(call.resources.all()) == [second]
    (entry,) = AuditEntry.objects.filter(model="scheduling.servicecall", user_id=boss.user_id)
    assert entry.changes == {"resources": [[first.pk], [second.pk]]}


def test_the_audit_trail_is_read_only_in_the_admin(client, boss):
    entry = AuditEntry.objects.first()
    assert client.get(url(AuditEntry, "add")).status_code == 403
    assert client.post(url(AuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
