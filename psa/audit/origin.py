"""The origin of a write: a person in the PSA UI, or a sync on behalf of a resource.

Every ``do_*`` action takes an :class:`Origin`. The audit trail records it, and the
``psa_item_changed`` signal carries it so a sync can recognise its own writes (echoes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

OriginKind = Literal["user", "sync", "system"]


@dataclass(frozen=True)
class Origin:
    """Who is writing. ``source`` names the sync or system job (e.g. ``"exchange"``)."""

    kind: OriginKind
    user_id: int | None = None
    source: str = ""

    @classmethod
    def by_user(cls, user: AbstractBaseUser | AnonymousUser) -> Origin:
        """A person acting through the UI or the admin."""
        if not user.is_authenticated:
            raise ValueError("an anonymous user cannot write to the PSA")
        return cls(kind="user", user_id=user.pk)

    @classmethod
    def by_sync(cls, source: str) -> Origin:
        """A synchronisation job, e.g. ``Origin.by_sync("exchange")``."""
        if not source:
            raise ValueError("a sync origin needs a source name")
        return cls(kind="sync", source=source)

    @classmethod
    def by_system(cls, source: str) -> Origin:
        """Housekeeping such as the demo-data loader."""
        return cls(kind="system", source=source)

    @property
    def is_sync(self) -> bool:
        return self.kind == "sync"

    def __str__(self) -> str:
        if self.kind == "user":
            return f"user #{self.user_id}"
        return f"{self.kind}:{self.source}"
