"""The core's idea of what the PSA stores matches the PSA's model, and what it normalises the PSA
accepts (docs/sync-rules.md, "Items the PSA cannot store as they are")."""

from __future__ import annotations

import dataclasses

import pytest

from exchange_ext.engine import psa_store
from exchange_ext.models import MailboxSettings
from exchange_ext.sync import ops as o
from exchange_ext.sync.mapping import PSA_TEXT_MAX, import_record
from exchange_ext.sync.records import ItemKind, PsaKey, Side
from psa.scheduling.models import Appointment
from tests.builders import make_resource
from tests.unit.sync.factories import OPTIONS, calendar, foreign, linked

pytestmark = pytest.mark.django_db


def test_the_cores_text_limit_is_the_appointment_models() -> None:
    for name in ("title", "location"):
        assert Appointment._meta.get_field(name).max_length == PSA_TEXT_MAX
    assert not Appointment._meta.get_field("title").blank  # hence "(No subject)"


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "x" * 1000, "location": "y" * 1000},
        {"subject": ""},
        {"subject": "A\x00B", "body": "\x00", "location": "\x00"},
        {"hours": 0},
        {"hours": -3},
        {"hours": 0, "is_all_day": True},
    ],
    ids=["over-long", "no-subject", "nul", "zero-length", "inverted", "all-day-zero"],
)
def test_every_normalised_import_is_accepted_by_the_psa(changes: dict[str, object]) -> None:
    mailbox = MailboxSettings.objects.create(resource=make_resource(), sync_enabled=True)
    fields = dict(changes)
    hours = float(fields.pop("hours", 1))  # type: ignore[arg-type]
    record = dataclasses.replace(calendar(hours=hours), **fields)  # type: ignore[arg-type]
    psa_record = import_record(foreign(record), OPTIONS)
    link = linked(PsaKey(ItemKind.APPOINTMENT, 0), psa_record, record, origin=Side.EXCHANGE)
    create = o.CreateInPsa(ItemKind.APPOINTMENT, psa_record, False, link, "new in Exchange")
    outcome = psa_store.apply_psa_op(mailbox, create)
    assert outcome.ok, outcome.error
    row = Appointment.objects.get(pk=outcome.psa_id)
    assert (row.title, row.location, row.start, row.end) == (
        psa_record.subject, psa_record.location, psa_record.start, psa_record.end,
    )  # fmt: skip
