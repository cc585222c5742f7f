"""Every reason the planner can give an op has a translation (exchange_ext/web/plan_reasons.py).

The pure planner states reasons in English; the Preview page shows them in the viewer's
language. This reads the reasons out of the sync package's source (string literals passed as
an op's reason, and the three patterns built from field groups) and fails on one the table
does not list, so a new reason cannot reach a page untranslated.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from django.utils import translation

from exchange_ext.sync import ops as o
from exchange_ext.sync.records import FieldGroup
from exchange_ext.web.plan_reasons import REASONS, reason_text

SYNC = Path(__file__).resolve().parents[2] / "exchange_ext" / "sync"
OP_TYPES = {name for name, value in vars(o).items() if isinstance(value, type)}


def _stated_reasons() -> set[str]:
    """String literals given to an op constructor (positionally or as ``reason=``), to a
    ``reason`` variable, or to the planner's ``emit_*`` helpers, in sync/*.py."""
    found: set[str] = set()
    for path in SYNC.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "reason" for t in node.targets
            ):
                found |= _literals(node.value)
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", "")
                if name in OP_TYPES or name.startswith("emit_"):
                    for arg in [*node.args, *(k.value for k in node.keywords)]:
                        found |= _literals(arg)
    return {text for text in found if " " in text}


def _literals(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.BoolOp):  # record.reason or "held deletion"
        return set().union(*(_literals(value) for value in node.values))
    return set()


def _patterned_reasons() -> set[str]:
    groups = sorted(group.value for group in FieldGroup)
    names = [
        " and ".join(combo)
        for size in range(1, len(groups) + 1)
        for combo in itertools.combinations(groups, size)
    ]
    reasons = set()
    for name in names:
        reasons |= {f"{name} changed in Exchange", f"{name} changed in the PSA"}
        reasons |= {f"both sides changed {name}; the {w} side wins" for w in ("PSA", "Exchange")}
    return reasons


def test_the_reader_finds_the_planner_s_reasons():
    assert {"new in the PSA", "left the sync window", "restored: kept"} <= _stated_reasons()


def test_every_reason_the_sync_package_states_is_listed():
    missing = (_stated_reasons() | _patterned_reasons()) - set(REASONS)
    assert not missing, sorted(missing)


@pytest.mark.parametrize("language", ["de", "ja", "zh-hans"])
def test_reasons_are_translated(language):
    with translation.override(language):
        untranslated = [r for r in REASONS if reason_text(r) == r]
    assert not untranslated, untranslated


def test_an_unknown_reason_is_shown_as_stated():
    with translation.override("de"):
        assert reason_text("some future reason") == "some future reason"
