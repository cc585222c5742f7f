"""The "Directions" table of docs/sync-rules.md as data: one test per cell."""

from __future__ import annotations

import pytest

from exchange_ext.sync.policy import (
    NOTHING,
    TIMES_ONLY,
    OnExchangeDelete,
    OnPsaDelete,
    rule_for,
)
from exchange_ext.sync.records import ALL_GROUPS, ItemKind, Side

PSA_KINDS = [ItemKind.APPOINTMENT, ItemKind.SERVICE_CALL, ItemKind.TODO, ItemKind.CONTACT]


@pytest.mark.parametrize("kind", PSA_KINDS)
def test_every_psa_change_flows_to_exchange_and_the_psa_wins(kind: ItemKind) -> None:
    rule = rule_for(kind, Side.PSA)
    assert rule.psa_to_exchange == ALL_GROUPS
    assert rule.psa_overwrites
    assert rule.winner is Side.PSA


@pytest.mark.parametrize(
    ("kind", "inbound"),
    [
        (ItemKind.APPOINTMENT, TIMES_ONLY),
        (ItemKind.TODO, TIMES_ONLY),
        (ItemKind.SERVICE_CALL, NOTHING),
        (ItemKind.CONTACT, NOTHING),
    ],
)
def test_only_date_time_flows_back_and_only_for_appointments_and_todos(kind, inbound) -> None:
    assert rule_for(kind, Side.PSA).exchange_to_psa == inbound


@pytest.mark.parametrize("kind", PSA_KINDS)
def test_exchange_deletes_of_psa_items_are_not_reflected(kind: ItemKind) -> None:
    assert rule_for(kind, Side.PSA).on_exchange_delete is OnExchangeDelete.NOT_REFLECTED


@pytest.mark.parametrize("kind", PSA_KINDS)
def test_psa_deletes_of_psa_items_delete_in_exchange(kind: ItemKind) -> None:
    assert rule_for(kind, Side.PSA).on_psa_delete is OnPsaDelete.DELETE_IN_EXCHANGE


def test_exchange_appointment_organized_by_the_resource_flows_both_ways_exchange_wins() -> None:
    rule = rule_for(ItemKind.APPOINTMENT, Side.EXCHANGE, is_organizer=True)
    assert (rule.psa_to_exchange, rule.exchange_to_psa) == (ALL_GROUPS, ALL_GROUPS)
    assert rule.winner is Side.EXCHANGE
    assert not rule.psa_overwrites
    assert rule.on_exchange_delete is OnExchangeDelete.DELETE_IN_PSA
    assert rule.on_psa_delete is OnPsaDelete.DELETE_IF_ORGANIZER_AND_FUTURE


def test_exchange_appointment_the_resource_only_attends_is_read_only_in_the_psa() -> None:
    rule = rule_for(ItemKind.APPOINTMENT, Side.EXCHANGE, is_organizer=False)
    assert rule.psa_to_exchange == NOTHING
    assert rule.exchange_to_psa == ALL_GROUPS


def test_detail_less_import_only_writes_times_back() -> None:
    rule = rule_for(ItemKind.APPOINTMENT, Side.EXCHANGE, details_flow_out=False)
    assert rule.psa_to_exchange == TIMES_ONLY


@pytest.mark.parametrize("kind", [ItemKind.SERVICE_CALL, ItemKind.TODO, ItemKind.CONTACT])
def test_only_appointments_can_originate_in_exchange(kind: ItemKind) -> None:
    with pytest.raises(KeyError):
        rule_for(kind, Side.EXCHANGE)
