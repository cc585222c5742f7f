"""Every email in its recipient's language (SPEC §1, "Languages"), through a real SMTP server.

The setup email reads the resource's language; each alert (failing, reminder, recovered,
outage, outage reminder, outage over, sync account refused) the language of each recipient who
is a PSA user, else ``PSA_LANGUAGE``: one message per language. The subjects are asserted as
the translators wrote them (the catalogues must carry them); the bodies as the catalogues give
them in that language, and their HTML part declares it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from django.utils import translation
from django.utils.translation import gettext, ngettext

from exchange_ext.backends.base import (
    AuthFailed,
    BackendError,
    SharedCredentialsRefused,
    Unavailable,
)
from exchange_ext.backends.ews.endpoint import endpoint_url
from exchange_ext.jobs import notifications
from exchange_ext.jobs.notifications import send_setup_emails
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.web.enrollment import set_enabled_resources
from tests import clock
from tests.builders import make_resource
from tests.smtp import Inbox, smtp_inbox

pytestmark = pytest.mark.django_db
Status = MailboxSettings.Status
LANGUAGES = ["en", "de", "ja", "zh-hans"]

# The subjects as the catalogues translate them ({names} / {count} filled in by the test).
SUBJECTS: dict[str, dict[str, str]] = {
    "en": {
        "setup": "Your calendar now syncs with Microsoft Exchange",
        "failing": "MS Exchange: sync failing for {names}",
        "reminder": "MS Exchange: reminder, sync still failing for {names}",
        "recovered": "MS Exchange: sync works again for {names}",
        "outage": "MS Exchange: the server cannot be reached ({count} resources failing)",
        "outage_reminder": (
            "MS Exchange: reminder, the server still cannot be reached ({count} failing)"
        ),
        "outage_recovered": "MS Exchange: the server works again ({count} resources sync again)",
        "shared_refused": (
            "MS Exchange: the sync account's credentials were refused (1 resource stopped)"
        ),
    },
    "de": {
        "setup": "Ihr Kalender wird jetzt mit Microsoft Exchange synchronisiert",
        "failing": "MS Exchange: Synchronisierung schlägt fehl für {names}",
        "reminder": "MS Exchange: Erinnerung, Synchronisierung schlägt weiterhin fehl für {names}",
        "recovered": "MS Exchange: Synchronisierung funktioniert wieder für {names}",
        "outage": "MS Exchange: Der Server ist nicht erreichbar ({count} Mitarbeiter betroffen)",
        "outage_reminder": (
            "MS Exchange: Erinnerung, der Server ist weiterhin nicht erreichbar ({count} betroffen)"
        ),
        "outage_recovered": (
            "MS Exchange: Der Server funktioniert wieder ({count} Mitarbeiter werden wieder "
            "synchronisiert)"
        ),
        "shared_refused": (
            "MS Exchange: Die Anmeldeinformationen des Synchronisierungskontos wurden abgelehnt "
            "(1 Mitarbeiter angehalten)"
        ),
    },
    "ja": {
        "setup": "予定表が Microsoft Exchange と同期されるようになりました",
        "failing": "MS Exchange：{names} の同期が失敗しています",
        "reminder": "MS Exchange：再通知、{names} の同期が引き続き失敗しています",
        "recovered": "MS Exchange：{names} の同期が復旧しました",
        "outage": "MS Exchange：サーバーに接続できません ({count} 件のリソースで失敗)",
        "outage_reminder": (
            "MS Exchange：再通知、サーバーに引き続き接続できません ({count} 件で失敗)"
        ),
        "outage_recovered": (
            "MS Exchange：サーバーが復旧しました ({count} 件のリソースの同期が再開)"
        ),
        "shared_refused": (
            "MS Exchange：同期アカウントの資格情報が拒否されました (1 件のリソースが停止)"
        ),
    },
    "zh-hans": {
        "setup": "您的日历现已与 Microsoft Exchange 同步",
        "failing": "MS Exchange：{names} 的同步失败",
        "reminder": "MS Exchange：提醒，{names} 的同步仍然失败",
        "recovered": "MS Exchange：{names} 的同步已恢复",
        "outage": "MS Exchange：无法连接服务器（{count} 个资源同步失败）",
        "outage_reminder": "MS Exchange：提醒，仍无法连接服务器（{count} 个失败）",
        "outage_recovered": "MS Exchange：服务器已恢复（{count} 个资源恢复同步）",
        "shared_refused": "MS Exchange：同步帐户的凭据被拒绝（1 个资源已停止）",
    },
}


@pytest.fixture
def inbox(settings: Any) -> Iterator[Inbox]:
    settings.PSA_BASE_URL = "https://psa.example.test"
    with smtp_inbox(settings) as handler:
        yield handler


def _configure(notification_emails: str) -> None:
    config = ExchangeConfig.load()
    config.enabled = True
    config.server_address = "mail.northwind.example"
    config.notification_emails = notification_emails
    config.use_for_all_users = False
    config.save()


def _enabled(count: int, prefix: str = "tech") -> list[MailboxSettings]:
    resources = [
        make_resource(f"{prefix}{n}", first_name=f"{prefix.title()}{n}", last_name="Tester")
        for n in range(1, count + 1)
    ]
    enabled = set_enabled_resources([r.pk for r in resources], [])
    rows = MailboxSettings.objects.filter(pk__in=[s.pk for s in enabled]).select_related("resource")
    return sorted(rows, key=lambda row: row.resource.first_name)


def _set(rows: list[MailboxSettings], status: str, kind: str = "", failures: int = 0) -> None:
    MailboxSettings.objects.filter(pk__in=[r.pk for r in rows]).update(
        status=status, last_error_kind=kind, consecutive_failures=failures,
        last_error="" if status == Status.OK else "Connection refused",
        failing_since=None if status == Status.OK else clock.now(),
    )  # fmt: skip


def _subject(message: EmailMessage) -> str:
    """The subject as a mail client shows it (a folded encoded header starts with a space)."""
    return str(message["Subject"]).strip()


def _text(message: EmailMessage) -> str:
    return str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def _html(message: EmailMessage) -> str:
    return str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]


def _in(language: str, text: str) -> str:
    with translation.override(language):
        return gettext(text)


def _words(language: str, error: type[BackendError], attribute: str) -> str:
    """An error class's plain words (``alert``, ``hint``) in ``language``: they translate when
    read, so read them inside the override (not in whatever language happens to be active)."""
    with translation.override(language):
        return str(getattr(error, attribute))


def _one(inbox: Inbox, to: str) -> EmailMessage:
    [message] = inbox.take()
    assert message["To"] == to
    return message


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_setup_email_is_in_the_resources_language(inbox: Inbox, language: str):
    ada = make_resource("ada", first_name="Ada", language=language)
    send_setup_emails(set_enabled_resources([ada.pk], []))
    message = _one(inbox, ada.email)
    assert _subject(message) == SUBJECTS[language]["setup"]
    with translation.override(language):
        hello = gettext("Hello %(name)s,") % {"name": ada.full_name}
        expect = gettext(
            "If you did not expect this message, please contact your PSA administrator."
        )
    assert hello in _text(message) and expect in _text(message)
    assert "https://psa.example.test/profile/exchange/" in _text(message)
    assert f'<html lang="{language}">' in _html(message) and hello in _html(message)


@pytest.mark.parametrize("language", LANGUAGES)
def test_failing_reminder_and_recovered_emails_are_in_the_admins_language(
    inbox: Inbox, language: str
):
    admin = make_resource("admin", email="it-ops@northwind.example", language=language)
    _configure(admin.email)
    [row] = _enabled(1)
    names = row.resource.full_name
    now = clock.now()

    _set([row], Status.DISABLED, AuthFailed.kind, failures=1)
    assert notifications.evaluate(now) == [SUBJECTS[language]["failing"].format(names=names)]
    message = _one(inbox, admin.email)
    assert _subject(message) == SUBJECTS[language]["failing"].format(names=names)
    text = _text(message)
    assert f"{_in(language, 'Error:')} {_words(language, AuthFailed, 'alert')}" in text
    assert f"{_in(language, 'What to do:')} {_words(language, AuthFailed, 'hint')}" in text
    assert _in(language, "At most one reminder a day is sent while a problem lasts.") in text
    assert f'<html lang="{language}">' in _html(message)
    assert f'<th align="left">{_in(language, "Mailbox")}</th>' in _html(message)

    later = now + notifications.REMINDER_EVERY + dt.timedelta(minutes=1)
    notifications.evaluate(later)
    message = _one(inbox, admin.email)
    assert _subject(message) == SUBJECTS[language]["reminder"].format(names=names)
    with translation.override(language):
        intro = gettext(
            "Reminder: the MS Exchange sync still fails for these resources (server %(server)s):"
        ) % {"server": endpoint_url(ExchangeConfig.load())}
    assert intro in _text(message)

    _set([row], Status.OK)
    notifications.evaluate(later)
    message = _one(inbox, admin.email)
    assert _subject(message) == SUBJECTS[language]["recovered"].format(names=names)
    assert _in(language, "Settings:") + " https://psa.example.test/" in _text(message)


@pytest.mark.parametrize("language", LANGUAGES)
def test_outage_emails_are_in_the_admins_language(inbox: Inbox, language: str):
    admin = make_resource("admin", email="it-ops@northwind.example", language=language)
    _configure(admin.email.upper())  # the address matches the resource whatever its case
    rows = _enabled(3)
    now = clock.now()

    _set(rows, Status.FAILING, Unavailable.kind, failures=2)
    notifications.evaluate(now)
    message = _one(inbox, admin.email.upper())
    assert _subject(message) == SUBJECTS[language]["outage"].format(count=3)
    with translation.override(language):
        retries = gettext(
            "Their calendars stay as they are until it answers again; the sync retries by itself"
            " and you will get one email when it works again."
        )
    assert retries in _text(message) and retries in _html(message)

    later = now + notifications.REMINDER_EVERY + dt.timedelta(minutes=1)
    notifications.evaluate(later)
    message = _one(inbox, admin.email.upper())
    assert _subject(message) == SUBJECTS[language]["outage_reminder"].format(count=3)

    _set(rows, Status.OK)
    notifications.evaluate(later)
    message = _one(inbox, admin.email.upper())
    assert _subject(message) == SUBJECTS[language]["outage_recovered"].format(count=3)
    with translation.override(language):
        back = ngettext(
            "The MS Exchange server %(server)s answers again: %(counter)s resource syncs again.",
            "The MS Exchange server %(server)s answers again: %(counter)s resources sync again.",
            3,
        ) % {"server": endpoint_url(ExchangeConfig.load()), "counter": 3}
    assert back in _text(message)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_refused_sync_account_email_is_in_the_admins_language(inbox: Inbox, language: str):
    admin = make_resource("admin", email="it-ops@northwind.example", language=language)
    _configure(admin.email)
    [row] = _enabled(1)
    _set([row], Status.DISABLED, SharedCredentialsRefused.kind, failures=1)
    notifications.evaluate(clock.now())
    message = _one(inbox, admin.email)
    assert _subject(message) == SUBJECTS[language]["shared_refused"]
    text = _text(message)
    assert text.startswith(_words(language, SharedCredentialsRefused, "alert"))
    # The fix in the recipient's words, not the stop message stored in the run's language.
    fix = f"{_in(language, 'What to do:')} {_words(language, SharedCredentialsRefused, 'hint')}"
    assert f"{fix} {_in(language, 'Saving the tab starts their sync again.')}" in text
    assert "Connection refused" not in text


@pytest.mark.parametrize("language", ["de", "ja"])
def test_an_address_of_no_psa_user_or_a_user_without_a_choice_reads_psa_language(
    inbox: Inbox, settings: Any, language: str
):
    settings.PSA_LANGUAGE = language
    undecided = make_resource("lead", email="lead@northwind.example", language="")
    _configure(f"outsider@partner.example; {undecided.email}")
    [row] = _enabled(1)
    _set([row], Status.DISABLED, AuthFailed.kind, failures=1)
    notifications.evaluate(clock.now())
    [message] = inbox.take()  # both read the same language: one message
    assert message["To"] == f"outsider@partner.example, {undecided.email}"
    names = row.resource.full_name
    assert _subject(message) == SUBJECTS[language]["failing"].format(names=names)
    # The setup email of a resource without a choice too.
    send_setup_emails([MailboxSettings.objects.get(pk=row.pk)])
    assert _subject(_one(inbox, row.resource.email)) == SUBJECTS[language]["setup"]


def test_two_recipients_in_two_languages_get_one_message_each(inbox: Inbox):
    german = make_resource("anna", email="anna@northwind.example", language="de")
    japanese = make_resource("yuki", email="yuki@northwind.example", language="ja")
    _configure(f"{german.email}; {japanese.email}; ops@northwind.example")  # ops: PSA_LANGUAGE
    rows = _enabled(4)
    names = ", ".join(r.resource.full_name for r in rows[:3])
    _set(rows, Status.DISABLED, AuthFailed.kind, failures=1)

    sent = notifications.evaluate(clock.now())

    with translation.override("de"):
        more_de = gettext("%(names)s and %(count)s more") % {"names": names, "count": 1}
    with translation.override("ja"):
        more_ja = gettext("%(names)s and %(count)s more") % {"names": names, "count": 1}
    by_to = {str(m["To"]): m for m in inbox.take()}
    assert sorted(by_to) == [german.email, "ops@northwind.example", japanese.email]
    assert _subject(by_to[german.email]) == SUBJECTS["de"]["failing"].format(names=more_de)
    assert _subject(by_to[japanese.email]) == SUBJECTS["ja"]["failing"].format(names=more_ja)
    assert _subject(by_to["ops@northwind.example"]) == (
        SUBJECTS["en"]["failing"].format(names=f"{names} and 1 more")
    )
    assert sorted(sent) == sorted(_subject(m) for m in by_to.values())
    # The bookkeeping moved once: no second round of emails.
    assert notifications.evaluate(clock.now()) == [] and inbox.take() == []
