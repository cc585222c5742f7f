"""The CRM directory: account and contact lists and details."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.builders import (
    make_account,
    make_contact,
    make_opportunity,
    make_resource,
    make_service_call,
    make_todo,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tech_client(client):
    client.force_login(make_resource().user)
    return client


def test_account_list_shows_the_account_manager(tech_client):
    manager = make_resource(first_name="Morgan", last_name="Manager")
    make_account("Globex", account_manager=manager)
    html = tech_client.get(reverse("crm:account_list")).content.decode()
    assert "Globex" in html and "Morgan Manager" in html


def test_account_search_matches_name_or_city(tech_client):
    make_account("Initech", city="Austin")
    make_account("Umbrella", city="Raccoon City")
    by_city = tech_client.get(reverse("crm:account_list"), {"q": "raccoon"}).content.decode()
    assert "Umbrella" in by_city and "Initech" not in by_city
    by_name = tech_client.get(reverse("crm:account_list"), {"q": "INIT"}).content.decode()
    assert "Initech" in by_name and "Umbrella" not in by_name


def test_account_list_paginates_and_tolerates_a_bad_page_number(tech_client):
    for n in range(30):
        make_account(f"Client {n:02d}")
    first = tech_client.get(reverse("crm:account_list")).content.decode()
    assert "Client 00" in first and "Client 29" not in first and "Page 1 of 2" in first
    last = tech_client.get(reverse("crm:account_list"), {"page": "999"}).content.decode()
    assert "Client 29" in last
    assert tech_client.get(reverse("crm:account_list"), {"page": "x"}).status_code == 200


def test_account_detail_shows_contacts_opportunities_open_calls_and_todos(tech_client):
    owner = make_resource(first_name="Olive")
    account = make_account("Hooli", street="1 Hacker Way", phone="+1 555 0100")
    make_contact(account, first_name="Gavin", last_name="Belson")
    make_opportunity(account, owner, title="Managed firewall")
    make_service_call([owner], account=account, description="Open call here")
    make_service_call([owner], account=account, description="Old call", status="complete")
    make_todo(owner, account=account, description="Send the quote")
    html = tech_client.get(reverse("crm:account_detail", args=[account.pk])).content.decode()
    for text in (
        "1 Hacker Way",
        "+1 555 0100",
        "Gavin Belson",
        "Managed firewall",
        "Open call here",
        "Send the quote",
    ):
        assert text in html
    assert "Old call" not in html


def test_contact_search_matches_name_email_and_account(tech_client):
    account = make_account("Wayne Enterprises")
    make_contact(account, first_name="Lucius", last_name="Fox", email="lfox@wayne.test")
    make_contact(make_account("Other"), first_name="Selina", last_name="Kyle")
    url = reverse("crm:contact_list")
    for query in ("lucius", "lfox@", "wayne ent"):
        html = tech_client.get(url, {"q": query}).content.decode()
        assert "Lucius Fox" in html and "Selina Kyle" not in html


def test_contact_list_filters_active_contacts_by_default(tech_client):
    make_contact(last_name="Current")
    make_contact(last_name="Former", active=False)
    url = reverse("crm:contact_list")
    default = tech_client.get(url).content.decode()
    assert "Current" in default and "Former" not in default
    inactive = tech_client.get(url, {"active": "inactive"}).content.decode()
    assert "Former" in inactive and "Current" not in inactive
    everyone = tech_client.get(url, {"active": "all"}).content.decode()
    assert "Former" in everyone and "Current" in everyone


def test_contact_detail_shows_all_emails_and_the_account(tech_client):
    contact = make_contact(
        make_account("Stark Industries"), email="a@stark.test", email2="b@stark.test"
    )
    html = tech_client.get(reverse("crm:contact_detail", args=[contact.pk])).content.decode()
    assert "a@stark.test" in html and "b@stark.test" in html and "Stark Industries" in html


def test_directory_output_is_escaped(tech_client):
    make_account("<script>alert(1)</script>")
    html = tech_client.get(reverse("crm:account_list")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_account_is_not_found(tech_client):
    assert tech_client.get(reverse("crm:account_detail", args=[999999])).status_code == 404
