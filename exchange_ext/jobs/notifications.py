"""Emails the extension sends: the setup email and the admins' alerts (docs/sync-rules.md,
"Notifications").

Alerts follow state transitions, not runs (docs/reliability.md, "#58"): :func:`evaluate`,
called by the every-minute dispatcher, compares each enabled mailbox's status with what the
admins were last told (``notified_state``) and sends at most one email of each sort per call,
each listing every resource concerned:

- **failing** — a resource newly failing: at once for a permanent error (disabled) and for
  a sync the watchdog found overdue (:mod:`exchange_ext.jobs.watchdog`), after
  :data:`FAILURES_BEFORE_ALERT` consecutive failed runs for a transient one or an unexpected
  error (or sooner once it has completed no sync for the watchdog's six intervals), and for
  throttling only when it lasts :data:`THROTTLING_ALERT_AFTER` (one throttling episode is not
  news); the shared sync account refused, which stops every resource using it at once, is
  one email of its own naming them all; a **server-wide outage** (at least
  :data:`OUTAGE_MIN_RESOURCES` resources and half of the enabled ones unable to reach the
  server) is one email, and resources that fail the same way while it lasts join it silently;
- **reminder** — at most every :data:`REMINDER_EVERY` while it keeps failing;
- **recovered** — when it works again (for an outage: once the server answers again).

Emails carry no secrets: names, mailbox addresses, the server URL, errors in plain words and
links into the PSA; every configured secret is scrubbed from the text as a last line of defence.

Each email is in its recipient's language (SPEC §1, "Languages"): the setup email in the
resource's; an alert once per language among its recipients, a recipient who is a PSA user
(a resource with that email) reading theirs, any other address ``PSA_LANGUAGE``
(:func:`psa.i18n.chosen_language`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_noop, ngettext

from exchange_ext.backends.base import (
    AuthFailed,
    BackendError,
    SharedCredentialsRefused,
    SyncOverdue,
    Throttled,
)
from exchange_ext.backends.ews.endpoint import endpoint_url
from exchange_ext.engine import status as mailbox_status
from exchange_ext.jobs import watchdog
from exchange_ext.models import ExchangeConfig, MailboxSettings, ServerOutage
from exchange_ext.secrets import Secret
from psa.i18n import chosen_language
from psa.resources.models import Resource

logger = logging.getLogger(__name__)

SETUP_SUBJECT = gettext_noop("Your calendar now syncs with Microsoft Exchange")
PROFILE_PATH = "/profile/exchange/"


def setup_message(mailbox_settings: MailboxSettings) -> EmailMultiAlternatives:
    """The setup email (text + HTML) for one newly enabled resource, to the resource's email,
    in the resource's language."""
    resource = mailbox_settings.resource
    mailbox = mailbox_settings.effective_mailbox
    context = {
        "resource_name": resource.full_name,
        "mailbox": mailbox,
        "mailbox_html": format_html("<strong>{}</strong>", mailbox),
        "profile_url": f"{settings.PSA_BASE_URL.rstrip('/')}{PROFILE_PATH}",
    }
    with translation.override(chosen_language(resource)):
        message = EmailMultiAlternatives(
            subject=gettext(SETUP_SUBJECT),
            body=render_to_string("exchange_ext/emails/setup.txt", context),
            to=[resource.email],
        )
        message.attach_alternative(
            render_to_string("exchange_ext/emails/setup.html", context), "text/html"
        )
    return message


def send_setup_email(mailbox_settings: MailboxSettings) -> None:
    """Send one setup email; raises the email backend's exception on failure."""
    setup_message(mailbox_settings).send(fail_silently=False)


def send_setup_emails(settings_list: Iterable[MailboxSettings]) -> list[str]:
    """Send the setup emails over one connection; return the addresses that failed.

    A failure is logged (address and error class only) and never raised: the enablement it
    follows is already committed and must not be lost because the mail server is down.
    """
    pending = [setup_message(s) for s in settings_list]
    failed: list[str] = []
    if not pending:
        return failed
    try:
        with get_connection(fail_silently=False) as connection:
            while pending:
                message = pending.pop(0)
                if not _send_one(connection, message):
                    failed.extend(message.to)
    except Exception as error:  # the mail server could not be reached (or hung up)
        logger.warning("setup emails not sent: mail server unusable (%s)", type(error).__name__)
        failed.extend(address for message in pending for address in message.to)
    return failed


def _send_one(connection: object, message: EmailMultiAlternatives) -> bool:
    try:
        message.connection = connection
        message.send(fail_silently=False)
    except Exception as error:
        logger.warning(
            "setup email to %s not sent: %s", ", ".join(message.to), type(error).__name__
        )
        return False
    return True


# --- alerts to the admins (docs/sync-rules.md, "Notifications") ---------------------------

Status = MailboxSettings.Status
FAILURES_BEFORE_ALERT = 2
THROTTLING_ALERT_AFTER = dt.timedelta(hours=2)
REMINDER_EVERY = dt.timedelta(hours=24)
OUTAGE_MIN_RESOURCES = 3
MAX_ERROR_CHARS = 300
DEFAULT_HINT = gettext_noop("See the resource's MS Exchange tab for the recent sync log.")
NO_ERROR_RECORDED = gettext_noop("No error recorded.")


@dataclass(frozen=True)
class Line:
    """One resource in an alert email."""

    resource: str
    mailbox: str
    error: str
    detail: str
    hint: str
    url: str


def evaluate(now: dt.datetime | None = None) -> list[str]:
    """Send the alerts the current statuses call for; return the subjects sent.

    ``now`` is the clock for the 24 h reminder and the throttling grace (tests time-travel
    it). An email that cannot be sent changes no bookkeeping, so the next call tries again.
    """
    now = now or timezone.now()
    config = ExchangeConfig.load()
    # A resource taken out of sync — disabled, inactive in the PSA, its login disabled — (or
    # the whole integration off) is nobody's alert any more.
    in_service = mailbox_status.in_service()
    MailboxSettings.objects.exclude(in_service).exclude(notified_state="").update(
        notified_state="", last_notified_at=None
    )
    if not config.enabled:
        return []
    rows = list(MailboxSettings.objects.filter(in_service).select_related("resource"))
    sent = _outage_step(config, rows, now)
    sent += _resource_step(config, [r for r in rows if r.notified_state != "outage"], now)
    return sent


def alerting(row: MailboxSettings, now: dt.datetime, config: ExchangeConfig | None = None) -> bool:
    """True when the resource's failure is worth an email (see the module docstring);
    ``config``: for the watchdog's limit (default: loaded)."""
    if row.status == Status.DISABLED:
        return True
    if row.status != Status.FAILING:
        return False
    if row.last_error_kind == Throttled.kind:
        return row.failing_since is not None and row.failing_since <= now - THROTTLING_ALERT_AFTER
    if row.last_error_kind == SyncOverdue.kind:
        return True
    if row.consecutive_failures >= FAILURES_BEFORE_ALERT:
        return True
    return watchdog.is_overdue(row, now, config or ExchangeConfig.load())


def _unreachable(rows: Sequence[MailboxSettings]) -> list[MailboxSettings]:
    return [r for r in rows if r.status == Status.FAILING and _error_class(r).outage]


def _server_down(rows: Sequence[MailboxSettings]) -> bool:
    down = len(_unreachable(rows))
    return down >= OUTAGE_MIN_RESOURCES and down * 2 >= len(rows)


def _outage_step(
    config: ExchangeConfig, rows: list[MailboxSettings], now: dt.datetime
) -> list[str]:
    outage = ServerOutage.objects.filter(ended_at__isnull=True).first()
    if outage is None:
        if not _server_down(rows):
            return []
        down = _unreachable(rows)
        sent = _send_alert(config, "outage", down)
        if sent is None:
            return []
        ServerOutage.objects.create(started_at=now, last_notified_at=now, affected=len(down))
        _mark(down, "outage", now)
        return sent
    # Resources that fail the same way while the outage lasts are part of it: no email each.
    _mark([r for r in _unreachable(rows) if r.notified_state == ""], "outage", None)
    covered = [r for r in rows if r.notified_state == "outage"]
    still = [r for r in covered if r.status != Status.OK]
    if _outage_over(rows, covered):
        return _end_outage(config, outage, covered, still, now)
    if outage.last_notified_at > now - REMINDER_EVERY:
        return []
    sent = _send_alert(config, "outage_reminder", still)
    if sent is None:
        return []
    ServerOutage.objects.filter(pk=outage.pk).update(last_notified_at=now)
    _mark(still, "outage", now)
    return sent


def _outage_over(rows: Sequence[MailboxSettings], covered: Sequence[MailboxSettings]) -> bool:
    # Resources come back one by one as their slots come round: the outage ends when at most a
    # tenth of those it covered still cannot reach the server (they then count on their own).
    unreachable = [r for r in covered if r in _unreachable(rows)]
    return not _server_down(rows) and len(unreachable) * 10 <= len(covered)


def _end_outage(
    config: ExchangeConfig,
    outage: ServerOutage,
    covered: list[MailboxSettings],
    still: list[MailboxSettings],
    now: dt.datetime,
) -> list[str]:
    back = [r for r in covered if r.status == Status.OK]
    sent = _send_alert(config, "outage_recovered", back, still_failing=still)
    if sent is None:
        return []
    ServerOutage.objects.filter(pk=outage.pk).update(ended_at=now)
    _mark(back, "", None)
    _mark(still, "failing", now)
    return sent


def _resource_step(
    config: ExchangeConfig, rows: list[MailboxSettings], now: dt.datetime
) -> list[str]:
    new = [r for r in rows if r.notified_state == "" and alerting(r, now, config)]
    sent = _shared_step(config, [r for r in new if _shared_stop(r)], now)
    new = [r for r in new if not _shared_stop(r)]
    if new and (subjects := _send_alert(config, "failing", new)) is not None:
        _mark(new, "failing", now)
        sent += subjects
    back = [r for r in rows if r.notified_state == "failing" and r.status == Status.OK]
    if back and (subjects := _send_alert(config, "recovered", back)) is not None:
        _mark(back, "", None)
        sent += subjects
    due = [
        r
        for r in rows
        if r.notified_state == "failing"
        and r.status in (Status.FAILING, Status.DISABLED)
        and (r.last_notified_at is None or r.last_notified_at <= now - REMINDER_EVERY)
    ]
    if due and (subjects := _send_alert(config, "reminder", due)) is not None:
        _mark(due, "failing", now)
        sent += subjects
    return sent


def _shared_stop(row: MailboxSettings) -> bool:
    return row.status == Status.DISABLED and row.last_error_kind in mailbox_status.SHARED_STOP_KINDS


def _shared_step(
    config: ExchangeConfig, rows: list[MailboxSettings], now: dt.datetime
) -> list[str]:
    """The shared credentials refused: one email for every resource they stopped at once
    (reminders and recoveries go with the per-resource emails)."""
    if not rows:
        return []
    sent = _send_alert(config, "shared_refused", rows)
    if sent is None:
        return []
    _mark(rows, "failing", now)
    return sent


def _mark(rows: Iterable[MailboxSettings], state: str, at: dt.datetime | None) -> None:
    rows = list(rows)
    if not rows:
        return
    values: dict[str, object] = {"notified_state": state}
    if at is not None or state == "":
        values["last_notified_at"] = at
    MailboxSettings.objects.filter(pk__in=[r.pk for r in rows]).update(**values)
    for row in rows:
        row.notified_state = state
        if "last_notified_at" in values:
            row.last_notified_at = at


def _names(rows: Sequence[MailboxSettings]) -> str:
    names = ", ".join(r.resource.full_name for r in rows[:3])
    if len(rows) <= 3:
        return names
    more = len(rows) - 3
    return ngettext("%(names)s and %(count)s more", "%(names)s and %(count)s more", more) % {
        "names": names,
        "count": more,
    }


def alert_subject(sort: str, rows: Sequence[MailboxSettings]) -> str:
    """The subject of an alert of ``sort`` about ``rows``, in the active language."""
    count = len(rows)
    if sort == "outage":
        return ngettext(
            "MS Exchange: the server cannot be reached (%(count)s resource failing)",
            "MS Exchange: the server cannot be reached (%(count)s resources failing)",
            count,
        ) % {"count": count}
    if sort == "outage_reminder":
        return gettext(
            "MS Exchange: reminder, the server still cannot be reached (%(count)s failing)"
        ) % {"count": count}
    if sort == "outage_recovered":
        return ngettext(
            "MS Exchange: the server works again (%(count)s resource syncs again)",
            "MS Exchange: the server works again (%(count)s resources sync again)",
            count,
        ) % {"count": count}
    if sort == "shared_refused":
        return ngettext(
            "MS Exchange: the sync account's credentials were refused (%(count)s resource stopped)",
            "MS Exchange: the sync account's credentials were refused "
            "(%(count)s resources stopped)",
            count,
        ) % {"count": count}
    names = {"names": _names(rows)}
    if sort == "recovered":
        return gettext("MS Exchange: sync works again for %(names)s") % names
    if sort == "reminder":
        return gettext("MS Exchange: reminder, sync still failing for %(names)s") % names
    return gettext("MS Exchange: sync failing for %(names)s") % names


# --- rendering and sending ------------------------------------------------------------------


def recipients(config: ExchangeConfig) -> list[str]:
    """The General tab's semicolon-separated ``notification_emails``."""
    return [a.strip() for a in config.notification_emails.split(";") if a.strip()]


def recipient_languages(addresses: Sequence[str]) -> dict[str, list[str]]:
    """``addresses`` grouped by the language each reads, in the order first met: a PSA user
    (a resource with that email, whatever its case) their chosen language, any other address
    ``PSA_LANGUAGE``."""
    lowered = {address.lower() for address in addresses}
    people = Resource.objects.annotate(address=Lower("email")).filter(address__in=lowered)
    by_address = {person.email.lower(): person for person in people}
    groups: dict[str, list[str]] = {}
    for address in addresses:
        language = chosen_language(by_address.get(address.lower()))
        groups.setdefault(language, []).append(address)
    return groups


def alert_message(
    config: ExchangeConfig,
    sort: str,
    rows: Sequence[MailboxSettings],
    *,
    still_failing: Sequence[MailboxSettings] = (),
    to: Sequence[str] | None = None,
    language: str | None = None,
) -> EmailMultiAlternatives:
    """One alert email (text + HTML) to ``to`` (default: every admin address), in
    ``language`` (default: the active one); ``sort`` picks the wording."""
    with translation.override(language or translation.get_language()):
        return _alert_message(config, sort, rows, still_failing, to or recipients(config))


def _alert_message(
    config: ExchangeConfig,
    sort: str,
    rows: Sequence[MailboxSettings],
    still_failing: Sequence[MailboxSettings],
    to: Sequence[str],
) -> EmailMultiAlternatives:
    secrets = _secrets(config, [*rows, *still_failing])
    server_url = endpoint_url(config) if config.server_address else gettext("(not configured)")
    context = {
        "sort": sort,
        "first": _line(config, rows[0], secrets) if rows else None,
        "server_url": server_url,
        "server_html": format_html("<code>{}</code>", server_url),
        "lines": [_line(config, r, secrets) for r in rows],
        "still_failing": [_line(config, r, secrets) for r in still_failing],
        "status_url": _absolute(reverse("exchange_ext:status")),
    }
    text = _scrub(render_to_string("exchange_ext/emails/alert.txt", context), secrets)
    html = _scrub(render_to_string("exchange_ext/emails/alert.html", context), secrets)
    subject = " ".join(alert_subject(sort, rows).split())[:200]
    message = EmailMultiAlternatives(subject=_scrub(subject, secrets), body=text, to=list(to))
    message.attach_alternative(html, "text/html")
    return message


def _send_alert(
    config: ExchangeConfig,
    sort: str,
    rows: Sequence[MailboxSettings],
    *,
    still_failing: Sequence[MailboxSettings] = (),
) -> list[str] | None:
    """Send one alert, one message per language among its recipients; return the subjects
    sent, or None when none could be sent (the mail server failed: the next minute retries).

    With no recipients nothing is sent and the bookkeeping still moves on: the subject in the
    installation's language is returned.
    """
    groups = recipient_languages(recipients(config))
    if not groups:
        with translation.override(str(settings.PSA_LANGUAGE)):
            return [alert_subject(sort, rows)]  # nobody to tell
    sent: list[str] = []
    for language, addresses in groups.items():
        message = alert_message(
            config, sort, rows, still_failing=still_failing, to=addresses, language=language
        )
        try:
            message.send(fail_silently=False)
        except Exception as error:  # SMTP down: never the sync's problem; next minute retries
            logger.warning(
                "exchange alert %r (%s) not sent: %s", sort, language, type(error).__name__
            )
            continue
        sent.append(str(message.subject))
    return sent or None


def _translated(text: str) -> str:
    """``text`` (an English sentence of the error classes) in the active language."""
    return gettext(text) if text else ""


def _error_class(row: MailboxSettings) -> type[BackendError]:
    """The error class the row's stored ``last_error_kind`` names (the base when unknown)."""
    return BackendError.of_kind(row.last_error_kind) or BackendError


def _line(config: ExchangeConfig, row: MailboxSettings, secrets: list[str]) -> Line:
    error_class = _error_class(row)
    hint = error_class.hint or DEFAULT_HINT
    shared = issubclass(error_class, SharedCredentialsRefused)  # carries its own hint
    if issubclass(error_class, AuthFailed) and config.use_for_all_users and not shared:
        hint = AuthFailed.shared_account_hint
    hint = _translated(hint)
    recorded = " ".join((row.last_error or gettext(NO_ERROR_RECORDED)).split())
    if len(recorded) > MAX_ERROR_CHARS:
        recorded = recorded[: MAX_ERROR_CHARS - 1] + "…"
    plain = _translated(error_class.alert)
    url = _absolute(reverse("exchange_ext:resource_settings", args=[row.resource_id]))
    return Line(
        resource=row.resource.full_name,
        mailbox=row.effective_mailbox,
        # The plain sentence first; the recorded text (server's words) as the detail.
        error=plain or _scrub(recorded, secrets),
        detail=_scrub(recorded, secrets) if plain else "",
        hint=hint,
        url=url,
    )


def _secrets(config: ExchangeConfig, rows: Iterable[MailboxSettings]) -> list[str]:
    values = [config.password, config.client_secret, config.client_certificate]
    values += [r.password for r in rows]
    plain = [v.reveal() for v in values if isinstance(v, Secret) and v.__class__ is Secret]
    # Very short values would scrub ordinary words; the forms require real passwords anyway.
    return [p for p in plain if len(p) >= 4]


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[hidden]")
    return text


def _absolute(path: str) -> str:
    return f"{settings.PSA_BASE_URL.rstrip('/')}{path}"
