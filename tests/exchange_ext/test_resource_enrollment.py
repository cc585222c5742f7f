"""Enabling resources (Resources tab) and the setup email, through a real SMTP server.

README, "Configuring the MS Exchange extension"; docs/sync-rules.md, "Notifications".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange_ext.jobs.notifications import SETUP_SUBJECT, send_setup_emails
from exchange_ext.models import MailboxSettings
from exchange_ext.web.enrollment import set_enabled_resources
from tests.builders import make_resource
from tests.smtp import Inbox, free_port, smtp_inbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(settings) -> Iterator[Inbox]:
    settings.PSA_BASE_URL = "https://psa.example.test"
    with smtp_inbox(settings) as handler:
        yield handler


def test_enabling_creates_settings_and_returns_only_the_newly_enabled():
    fresh, again, already = make_resource(), make_resource(), make_resource()
    MailboxSettings.objects.create(resource=again, sync_enabled=False)
    MailboxSettings.objects.create(resource=already, sync_enabled=True)

    newly = set_enabled_resources([fresh.pk, again.pk, already.pk], [])

    assert {s.resource_id for s in newly} == {fresh.pk, again.pk}
    assert all(s.enabled_at is not None for s in newly)
    assert MailboxSettings.objects.filter(sync_enabled=True).count() == 3
    assert MailboxSettings.objects.get(resource=already).enabled_at is None


def test_disabling_keeps_the_settings_row():
    resource = make_resource()
    set_enabled_resources([resource.pk], [])

    assert set_enabled_resources([], [resource.pk]) == []

    assert MailboxSettings.objects.get(resource=resource).sync_enabled is False


def test_re_enabling_after_a_permanent_error_starts_again_from_never():
    resource = make_resource()
    MailboxSettings.objects.create(
        resource=resource, sync_enabled=False, status=MailboxSettings.Status.DISABLED
    )

    [settings] = set_enabled_resources([resource.pk], [])

    assert settings.status == MailboxSettings.Status.NEVER
    assert MailboxSettings.objects.get(resource=resource).status == MailboxSettings.Status.NEVER


def test_inactive_resources_are_not_enabled():
    gone = make_resource(active=False)
    assert set_enabled_resources([gone.pk], []) == []
    assert not MailboxSettings.objects.exists()


def test_enabling_costs_the_same_queries_for_5_and_for_150_resources():
    def queries_for(count: int) -> int:
        created = [make_resource() for _ in range(count)]
        reenabled = [make_resource() for _ in range(count)]
        MailboxSettings.objects.bulk_create(MailboxSettings(resource=r) for r in reenabled)
        off = [make_resource() for _ in range(count)]
        MailboxSettings.objects.bulk_create(
            MailboxSettings(resource=r, sync_enabled=True) for r in off
        )
        with CaptureQueriesContext(connection) as captured:
            set_enabled_resources([r.pk for r in created + reenabled], [r.pk for r in off])
        return len(captured)

    assert queries_for(5) == queries_for(150)


def test_each_newly_enabled_resource_receives_the_setup_email(inbox):
    first, second = make_resource(first_name="Ada"), make_resource(first_name="Grace")
    newly = set_enabled_resources([first.pk, second.pk], [])

    failed = send_setup_emails(newly)

    assert failed == []
    assert sorted(m["To"] for m in inbox.messages) == sorted([first.email, second.email])
    message = next(m for m in inbox.messages if m["To"] == first.email)
    assert message["Subject"] == SETUP_SUBJECT
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hello Ada" in text
    assert "https://psa.example.test/profile/exchange/" in text
    assert 'href="https://psa.example.test/profile/exchange/"' in html


def test_a_refused_recipient_is_reported_and_the_others_still_get_their_email(inbox, caplog):
    good, bad = make_resource(), make_resource()
    inbox.refuse.add(bad.email)
    newly = set_enabled_resources([good.pk, bad.pk], [])

    with caplog.at_level(logging.WARNING):
        failed = send_setup_emails(newly)

    assert failed == [bad.email]
    assert [m["To"] for m in inbox.messages] == [good.email]
    assert MailboxSettings.objects.filter(sync_enabled=True).count() == 2
    assert bad.email in caplog.text


def test_an_unreachable_mail_server_loses_no_enablement(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    resource = make_resource()
    newly = set_enabled_resources([resource.pk], [])

    assert send_setup_emails(newly) == [resource.email]
    assert MailboxSettings.objects.get(resource=resource).sync_enabled
