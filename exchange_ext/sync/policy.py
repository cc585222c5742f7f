"""The sync rules as data: per kind and origin, what flows which way.

Read the table as the "Directions" table of docs/sync-rules.md. The planner never branches on
a kind; it asks :func:`rule_for` and follows the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from exchange_ext.sync.records import ALL_GROUPS, FieldGroup, ItemKind, Side

NOTHING: frozenset[FieldGroup] = frozenset()
TIMES_ONLY: frozenset[FieldGroup] = frozenset({FieldGroup.TIMES})


class OnExchangeDelete(StrEnum):
    DELETE_IN_PSA = "delete_in_psa"
    # The link is marked exchange-deleted; the next PSA change re-exports the item.
    NOT_REFLECTED = "not_reflected"


class OnPsaDelete(StrEnum):
    DELETE_IN_EXCHANGE = "delete_in_exchange"
    # Exchange-origin: delete there only if the resource organizes it and it is still ahead;
    # otherwise unlink (and never re-import it).
    DELETE_IF_ORGANIZER_AND_FUTURE = "delete_if_organizer_and_future"


@dataclass(frozen=True)
class Rule:
    """How one item syncs.

    ``psa_overwrites``: the PSA is the master copy, so any PSA change rewrites every outbound
    group (Exchange-side edits that do not flow back are overwritten then, not before).
    ``winner``: who wins a field group both sides changed to different values (the origin).
    """

    psa_to_exchange: frozenset[FieldGroup]
    exchange_to_psa: frozenset[FieldGroup]
    psa_overwrites: bool
    winner: Side
    on_exchange_delete: OnExchangeDelete
    on_psa_delete: OnPsaDelete


_PSA_MASTER = Rule(
    psa_to_exchange=ALL_GROUPS,
    exchange_to_psa=NOTHING,
    psa_overwrites=True,
    winner=Side.PSA,
    on_exchange_delete=OnExchangeDelete.NOT_REFLECTED,
    on_psa_delete=OnPsaDelete.DELETE_IN_EXCHANGE,
)

#: One row per (kind, origin), as in docs/sync-rules.md, "Directions". Exchange-origin rows
#: assume the resource organizes the item; :func:`rule_for` narrows them for attendees and
#: detail-less imports.
POLICY: dict[tuple[ItemKind, Side], Rule] = {
    # Date/time changes made in Outlook flow back; subject/body edits wait to be overwritten.
    (ItemKind.APPOINTMENT, Side.PSA): replace(_PSA_MASTER, exchange_to_psa=TIMES_ONLY),
    (ItemKind.APPOINTMENT, Side.EXCHANGE): Rule(
        psa_to_exchange=ALL_GROUPS,
        exchange_to_psa=ALL_GROUPS,
        psa_overwrites=False,
        winner=Side.EXCHANGE,
        on_exchange_delete=OnExchangeDelete.DELETE_IN_PSA,
        on_psa_delete=OnPsaDelete.DELETE_IF_ORGANIZER_AND_FUTURE,
    ),
    # Nothing flows back; Exchange edits are overwritten on the next PSA change.
    (ItemKind.SERVICE_CALL, Side.PSA): _PSA_MASTER,
    (ItemKind.TODO, Side.PSA): replace(_PSA_MASTER, exchange_to_psa=TIMES_ONLY),
    (ItemKind.CONTACT, Side.PSA): _PSA_MASTER,
}


def rule_for(
    kind: ItemKind, origin: Side, *, is_organizer: bool = True, details_flow_out: bool = True
) -> Rule:
    """The rule of one item. Raises ``KeyError`` for a (kind, origin) the spec has no row for.

    ``is_organizer``: the resource organizes the Exchange item (attendees get a read-only
    copy: nothing flows out). ``details_flow_out``: the PSA holds the item's real details
    (imported with all details and not private), so they may be written back.
    """
    rule = POLICY[(kind, origin)]
    if origin is Side.PSA:
        return rule
    if not is_organizer:
        return replace(rule, psa_to_exchange=NOTHING)
    if not details_flow_out:
        # A placeholder "Appointment" must never overwrite the real subject in Exchange.
        return replace(rule, psa_to_exchange=TIMES_ONLY)
    return rule
