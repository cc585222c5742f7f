"""How a mailbox's sync status is shown: one label, one badge and the fix in plain words.

SPEC §3.3: the statuses are distinct at a glance — not enabled · waiting for the first sync ·
OK · failing (transient, retrying) · stopped (permanent error, with the fix in plain words) ·
held by the deletion guard. The Resources tab, a resource's page and the technician's profile
tab all read them here, so a stopped mailbox never looks like one nobody enabled.

The stored ``MailboxSettings.status`` is the runner's (``exchange_ext.engine.status``); this
module only reads it, with ``sync_enabled`` and the mass-delete guard's held rows. The fix
reuses the plain words the alert emails give (each error class's ``hint``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext

from exchange_ext.backends.base import AuthFailed, BackendError, SharedCredentialsRefused
from exchange_ext.engine import status as mailbox_status
from exchange_ext.models import ExchangeConfig, MailboxSettings

Status = MailboxSettings.Status


class State(StrEnum):
    """The six states a person tells apart (SPEC §3.3); the values name the CSS classes."""

    NOT_ENABLED = "not-enabled"
    WAITING = "waiting"
    OK = "ok"
    FAILING = "failing"
    STOPPED = "stopped"
    HELD = "held"


#: A text symbol per state, so the badges differ by more than their colour (hidden from
#: screen readers: the label says it).
ICONS = {
    State.NOT_ENABLED: "○",
    State.WAITING: "…",
    State.OK: "✓",
    State.FAILING: "↻",
    State.STOPPED: "■",
    State.HELD: "⏸",
}


@dataclass(frozen=True)
class StatusDisplay:
    """One mailbox's status as the pages show it: ``label`` (always shown as text),
    ``css`` (the badge's classes), ``icon`` and ``fix`` (what to do, in plain words; never
    blank) in the active language."""

    state: State
    label: str
    fix: str
    error: str = ""

    @property
    def css(self) -> str:
        return f"xe-state xe-state-{self.state.value}"

    @property
    def icon(self) -> str:
        return ICONS[self.state]

    @property
    def needs_action(self) -> bool:
        """Whether someone has to act (stopped or held) rather than wait."""
        return self.state in (State.STOPPED, State.HELD)


def status_display(
    settings: MailboxSettings | None,
    *,
    held: bool = False,
    config: ExchangeConfig | None = None,
) -> StatusDisplay:
    """The status of ``settings`` (None: a resource never enabled) for the pages.

    ``held``: whether the mass-delete guard holds deletions of the mailbox (its held rows);
    ``config`` (default: loaded when needed) picks the credentials hint of a refused login.
    A permanent stop outranks the guard (its fix comes first); the guard outranks a failure.
    """
    if settings is None or not settings.sync_enabled:
        return _not_enabled()
    if settings.status == Status.DISABLED:
        return _stopped(settings, config)
    if held or settings.status == Status.HELD:
        return _held(settings)
    if settings.status == Status.FAILING:
        return _failing(settings, config)
    if settings.status == Status.NEVER:
        return StatusDisplay(
            State.WAITING,
            gettext("Waiting for the first sync"),
            gettext("Nothing to do: the first sync starts within the sync interval."),
        )
    return StatusDisplay(State.OK, gettext("OK"), gettext("Nothing to do: the sync works."))


def _not_enabled() -> StatusDisplay:
    return StatusDisplay(
        State.NOT_ENABLED,
        gettext("Sync not enabled"),
        gettext(
            "Nothing syncs. An administrator enables the resource on the MS Exchange Resources tab."
        ),
    )


def _stopped(settings: MailboxSettings, config: ExchangeConfig | None) -> StatusDisplay:
    if settings.last_error_kind in mailbox_status.SHARED_STOP_KINDS:
        then = gettext("Saving the General tab lets every stopped resource try again.")
    else:
        then = gettext("Then save the resource's MS Exchange settings: the next run tries again.")
    fix = f"{error_hint(settings, config)} {then}"
    return StatusDisplay(State.STOPPED, gettext("Stopped"), fix, settings.last_error)


def _held(settings: MailboxSettings) -> StatusDisplay:
    fix = gettext(
        "Creates and updates go on; nothing is deleted. An administrator checks the mailbox, "
        "then chooses Confirm deletions or Restore on the resource's page."
    )
    return StatusDisplay(State.HELD, gettext("Held by the deletion guard"), fix)


def _failing(settings: MailboxSettings, config: ExchangeConfig | None) -> StatusDisplay:
    retry = gettext("The next run retries by itself.")
    fix = f"{retry} {gettext('If it keeps failing:')} {error_hint(settings, config)}"
    return StatusDisplay(State.FAILING, gettext("Failing, retrying"), fix, settings.last_error)


def error_hint(settings: MailboxSettings, config: ExchangeConfig | None = None) -> str:
    """What to do about the mailbox's last error (its class's hint, as the alert emails say
    it), in the active language."""
    error_class = BackendError.of_kind(settings.last_error_kind) or BackendError
    shared = issubclass(error_class, SharedCredentialsRefused)  # carries its own hint
    shared_login = issubclass(error_class, AuthFailed) and not shared
    if shared_login and (config or ExchangeConfig.load()).use_for_all_users:
        return AuthFailed.shared_account_hint
    return error_class.hint or gettext(
        "See the resource's MS Exchange tab for the recent sync log."
    )
