"""The static half of the demo: people, accounts, contacts and work titles from ``fixtures/demo``.

The JSON holds only invented, time-independent facts; ``calendar_items`` turns them into dated
items around "now" on every load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

FIXTURES_DIR = Path(settings.BASE_DIR) / "fixtures" / "demo"


@dataclass(frozen=True)
class Reference:
    """The parsed JSON files; each attribute is the file's top-level content."""

    staff: dict[str, Any]
    accounts: list[dict[str, Any]]
    work: dict[str, Any]

    @property
    def password(self) -> str:
        return str(self.staff["password"])


def load_reference(directory: Path = FIXTURES_DIR) -> Reference:
    """Read ``staff.json``, ``accounts.json`` and ``work.json`` from ``directory``."""

    def read(name: str) -> Any:
        return json.loads((directory / name).read_text(encoding="utf-8"))

    return Reference(
        staff=read("staff.json"), accounts=read("accounts.json")["accounts"], work=read("work.json")
    )
