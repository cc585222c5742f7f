"""Actions validate, save, audit with their origin, and announce committed writes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from psa.audit.models import AuditEntry
from psa.audit.origin import Origin
from psa.audit.signals import psa_item_changed
from psa.scheduling.actions import (
    do_delete_appointment,
    do_update_appointment,
    do_update_service_call,
)
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_appointment, make_resource, make_service_call

pytestmark = pytest.mark.django_db

SYNC = Origin.by_sync("exchange")


def test_create_records_an_audit_entry_with_the_origin():
    appointment = make_appointment(make_resource())
    entry = AuditEntry.objects.get(model="scheduling.appointment", object_id=str(appointment.pk))
    assert entry.action == "create"
    assert (entry.origin_kind, entry.origin_source) == ("system", "tests")
    assert entry.changes["title"] == [None, "Site visit"]


def test_update_by_sync_records_old_and_new_values():
    nine, ten, eleven = (clock.day(1, hour) for hour in ("09:00", "10:00", "11:00"))
    appointment = make_appointment(make_resource(), nine)
    changes = do_update_appointment(SYNC, appointment, start=ten, end=eleven)
    assert list(changes) == ["start", "end"]
    entry = AuditEntry.objects.filter(action="update").get()
    assert entry.origin_kind == "sync" and entry.origin_source == "exchange"
    tomorrow = f"{nine:%Y-%m-%d}"
    assert entry.changes["start"] == [f"{tomorrow}T09:00:00+00:00", f"{tomorrow}T10:00:00+00:00"]


def test_update_that_changes_nothing_writes_and_records_nothing():
    appointment = make_appointment(make_resource())
    before = appointment.updated_at
    assert do_update_appointment(SYNC, appointment, title="Site visit") == {}
    appointment.refresh_from_db()
    assert appointment.updated_at == before
    assert not AuditEntry.objects.filter(action="update").exists()


def test_invalid_update_raises_and_loses_nothing():
    appointment = make_appointment(make_resource())
    with pytest.raises(ValidationError):
        do_update_appointment(SYNC, appointment, end=appointment.start - dt.timedelta(hours=1))
    assert Appointment.objects.get(pk=appointment.pk).end > appointment.start
    assert not AuditEntry.objects.filter(action="update").exists()


def test_delete_is_audited_and_signalled_after_commit(django_capture_on_commit_callbacks):
    appointment = make_appointment(make_resource())
    seen = []

    def listener(sender, instance, action, origin, changes, **kwargs):
        seen.append((sender, instance.pk, action, origin))

    psa_item_changed.connect(listener)
    try:
        pk = appointment.pk
        with django_capture_on_commit_callbacks(execute=True):
            do_delete_appointment(SYNC, appointment)
    finally:
        psa_item_changed.disconnect(listener)
    assert seen == [(Appointment, pk, "delete", SYNC)]
    assert AuditEntry.objects.filter(action="delete", object_id=str(pk)).exists()


def test_reassigning_a_service_call_records_the_resource_change():
    first, second = make_resource(), make_resource()
    call = make_service_call([first])
    changes = do_update_service_call(SYNC, call, resources=[first, second])
    assert changes == {"resources": [[first.pk], sorted([first.pk, second.pk])]}


def test_a_sync_can_create_an_appointment_whose_origin_field_is_exchange():
    # The action's own ``origin`` parameter is positional-only, so the model field of the
    # same name passes through as a keyword.
    appointment = make_appointment(make_resource(), origin=Appointment.Origin.EXCHANGE)
    assert appointment.origin == "exchange"
    assert do_update_appointment(SYNC, appointment, origin="psa") == {"origin": ["exchange", "psa"]}
