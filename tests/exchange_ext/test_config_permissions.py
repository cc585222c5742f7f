"""Who reaches which MS Exchange page (docs/reliability.md, "#S7", "#S8"): anonymous users log
in, only holders of ``exchange_ext.manage_extension`` reach the admin pages, a technician only
their own tab, and every form carries a CSRF token that the server checks."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from exchange_ext.models import ExchangeConfig, MailboxSettings
from tests.builders import make_admin, make_resource
from tests.exchange_ext.pages import client_for, make_exchange_admin

pytestmark = pytest.mark.django_db
ADMIN_PAGES = ["general/", "synchronization/", "resources/"]


@pytest.fixture
def tech():
    return make_resource("tech1")


def admin_urls(resource_id: int) -> list[str]:
    pages = [*ADMIN_PAGES, f"resources/{resource_id}/"]
    return [f"/extensions/exchange/{page}" for page in pages]


def test_anonymous_users_are_sent_to_the_login_page(tech):
    client = Client()
    for url in [*admin_urls(tech.pk), "/profile/exchange/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.post("/profile/exchange/sync/").status_code == 302


def test_technician_gets_403_on_every_admin_page_and_action(tech):
    other = make_resource("tech2")
    client = client_for(tech)
    for url in admin_urls(other.pk):
        assert client.get(url).status_code == 403, url
        assert client.post(url, {}).status_code == 403, url
    for action in ("test/", "sync/"):
        url = f"/extensions/exchange/resources/{other.pk}/{action}"
        assert client.post(url).status_code == 403
    assert not MailboxSettings.objects.exists()


def test_technician_posting_to_their_own_admin_settings_url_gets_403(tech):
    url = f"/extensions/exchange/resources/{tech.pk}/"
    assert client_for(tech).post(url, {"mailbox": "x@example.com"}).status_code == 403


def test_staff_without_the_permission_gets_403(tech):
    staff = make_resource("staff")
    staff.user.is_staff = True
    staff.user.save()
    client = client_for(staff)
    for url in admin_urls(tech.pk):
        assert client.get(url).status_code == 403, url


def test_holder_of_manage_extension_reaches_every_admin_page(tech):
    client = client_for(make_exchange_admin())
    for url in admin_urls(tech.pk):
        assert client.get(url).status_code == 200, url


def test_superuser_reaches_every_admin_page(tech):
    client = client_for(make_admin())
    for url in admin_urls(tech.pk):
        assert client.get(url).status_code == 200, url


def test_technician_reaches_their_own_profile_tab(tech):
    response = client_for(tech).get("/profile/exchange/")
    assert response.status_code == 200 and response.context["resource"] == tech


def test_extension_page_is_listed_only_for_managers(tech):
    manager = client_for(make_exchange_admin())
    html = manager.get("/extensions/").content.decode()
    assert "Microsoft Extensions" in html and 'href="/extensions/exchange/general/"' in html
    assert client_for(tech).get("/extensions/").status_code == 403


def test_profile_tab_is_listed_for_users_with_a_resource(tech):
    html = client_for(tech).get("/profile/").content.decode()
    assert 'href="/profile/exchange/"' in html


def test_every_form_posts_with_a_csrf_token_and_the_server_checks_it(tech):
    manager = make_exchange_admin()
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager.user)
    urls = [*admin_urls(tech.pk), "/profile/exchange/"]
    for url in urls:
        html = client.get(url).content.decode()
        forms = html.count('method="post"')
        assert forms and html.count("csrfmiddlewaretoken") >= forms, url
    actions = ["/profile/exchange/sync/", f"/extensions/exchange/resources/{tech.pk}/test/"]
    for url in [*urls, *actions]:
        assert client.post(url, {}).status_code == 403, url
    assert ExchangeConfig.load().profile_name == ""


def test_permission_is_the_one_the_spec_names():
    assert Permission.objects.filter(
        content_type__app_label="exchange_ext", codename="manage_extension"
    ).exists()
