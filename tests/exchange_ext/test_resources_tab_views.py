"""The Resources tab (README, "Configuring the MS Exchange extension"): list, search, pagination,
enable/disable with setup emails, and a constant number of queries whatever the number of
resources."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange_ext.models import MailboxSettings
from psa.resources.models import Resource
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin

pytestmark = pytest.mark.django_db
URL = "/extensions/exchange/resources/"


@pytest.fixture
def admin():
    return make_exchange_admin()


@pytest.fixture
def admin_client(admin):
    return client_for(admin)


def bulk_resources(count: int, prefix: str) -> None:
    """``count`` active resources, every other one enabled (bulk: no actions, test speed only)."""
    users = User.objects.bulk_create([User(username=f"{prefix}{i}") for i in range(count)])
    resources = Resource.objects.bulk_create(
        [
            Resource(
                user=u, first_name="Bulk", last_name=f"{prefix}{i:05d}", email=f"{prefix}{i}@bulk.x"
            )
            for i, u in enumerate(users)
        ]
    )
    MailboxSettings.objects.bulk_create(
        [MailboxSettings(resource=r, sync_enabled=True, status="ok") for r in resources[::2]]
    )


def test_lists_active_resources_with_mailbox_status_and_last_attempt(admin_client, admin):
    admin.time_zone = "Europe/Berlin"
    admin.save()
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    attempted = clock.day(-1, "09:30", tz="Europe/Berlin")  # yesterday, Berlin wall clock
    enable(tech, mailbox="jonas@northwind.example", status="failing", last_attempt_at=attempted,
           last_error="The mailbox password was rejected by Exchange.")  # fmt: skip
    make_resource("gone", first_name="Old", last_name="Leaver", active=False)
    html = admin_client.get(URL).content.decode()
    assert "Jonas Brandt" in html and "jonas@northwind.example" in html
    assert "Failing" in html and 'title="The mailbox password was rejected by Exchange."' in html
    berlin_day = attempted.astimezone(ZoneInfo("Europe/Berlin"))
    # The admin's own zone, in the short format of English ("en": day/month/year, 24 h).
    assert f"{berlin_day:%d/%m/%Y} 09:30" in html
    assert f'href="/extensions/exchange/resources/{tech.pk}/"' in html
    assert "Old Leaver" not in html
    assert ">n/a</a>" in html  # the admin, never synced


def test_search_matches_name_and_email(admin_client):
    make_resource("tech1", first_name="Jonas", last_name="Brandt")
    make_resource("tech2", first_name="Aylin", last_name="Demir", email="aylin@northwind.example")
    html = admin_client.get(URL, {"q": "jonas brandt"}).content.decode()
    assert "Jonas Brandt" in html and "Aylin Demir" not in html
    html = admin_client.get(URL, {"q": "aylin@north"}).content.decode()
    assert "Aylin Demir" in html and "Jonas Brandt" not in html


def test_pages_hold_fifty_and_page_links_keep_the_search(admin_client):
    bulk_resources(120, "p")
    response = admin_client.get(URL, {"q": "bulk", "page": "2"})
    assert len(response.context["rows"]) == 50
    assert "?q=bulk&amp;page=3" in response.content.decode()


def test_save_enables_and_disables_and_sends_setup_emails(admin_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    a = make_resource("tech1", email="a@northwind.example")
    b = make_resource("tech2", email="b@northwind.example")
    c = make_resource("tech3", email="c@northwind.example")
    enable(c)
    shown = [a.pk, b.pk, c.pk]
    response = admin_client.post(URL, {"shown": shown, "enabled": [a.pk, b.pk]}, follow=True)
    html = response.content.decode()
    assert "2 resources enabled, 1 disabled; setup email sent to a@northwind.example" in html
    assert sorted(m.to[0] for m in mail.outbox) == ["a@northwind.example", "b@northwind.example"]
    enabled = MailboxSettings.objects.filter(sync_enabled=True).values_list("resource", flat=True)
    assert set(enabled) == {a.pk, b.pk}


def test_save_changes_only_the_resources_shown_on_the_page(admin_client):
    page_one = make_resource("tech1")
    other = make_resource("tech2")
    enable(page_one)
    admin_client.post(URL, {"shown": [other.pk], "enabled": []})
    assert MailboxSettings.objects.get(resource=page_one).sync_enabled


def test_already_enabled_resources_get_no_second_email(admin_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    tech = make_resource("tech1")
    enable(tech)
    response = admin_client.post(URL, {"shown": [tech.pk], "enabled": [tech.pk]}, follow=True)
    assert "0 resources enabled, 0 disabled." in response.content.decode()
    assert mail.outbox == []


def test_enabling_a_resource_not_on_the_page_is_refused(admin_client):
    tech = make_resource("tech1")
    response = admin_client.post(URL, {"shown": [], "enabled": [tech.pk]}, follow=True)
    assert "Nothing was saved" in response.content.decode()
    assert not MailboxSettings.objects.exists()


def test_save_redirects_back_to_the_same_search_and_page(admin_client):
    response = admin_client.post(f"{URL}?q=bulk&page=2", {"shown": [], "enabled": []})
    assert response["Location"] == f"{URL}?q=bulk&page=2"


def test_query_count_is_the_same_for_20_and_2000_resources(admin_client):
    bulk_resources(20, "small")
    admin_client.get(URL)  # warm the session and permission caches
    with CaptureQueriesContext(connection) as small:
        assert admin_client.get(URL).status_code == 200
    bulk_resources(1980, "large")
    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(URL)
    assert response.context["page"].paginator.count == 2001
    assert len(large) == len(small), [q["sql"] for q in large.captured_queries]
    print(f"Resources tab queries: {len(small)} with 21 resources, {len(large)} with 2001")
