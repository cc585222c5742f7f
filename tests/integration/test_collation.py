"""Lists of names sort as readers expect: umlauts and accents with their base letter
(psa/i18n/collation.py; docs/i18n.md "Sorted lists"). Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import functools

import pytest
from django.db import connection
from django.urls import reverse

from psa.crm.models import Account
from psa.i18n.collation import collated, compare
from tests.builders import make_account, make_contact, make_resource

pytestmark = pytest.mark.django_db

READERS_ORDER = ["Apfel", "Ärzte", "Bäckerei", "Brightwater", "Zeta"]
SHUFFLED = ["Brightwater", "Bäckerei", "Zeta", "Ärzte", "Apfel"]


def order_in(html: str, names: list[str]) -> list[str]:
    positions = {name: html.index(name) for name in names}
    return sorted(names, key=positions.__getitem__)


@pytest.fixture
def tech_client(client):
    client.force_login(make_resource().user)
    return client


def test_the_account_list_sorts_umlauts_with_their_base_letter(tech_client):
    for name in SHUFFLED:
        make_account(name)
    html = tech_client.get(reverse("crm:account_list")).content.decode()
    assert order_in(html, SHUFFLED) == READERS_ORDER


def test_the_contact_list_sorts_last_then_first_names_the_same_way(tech_client):
    account = make_account("Acme")
    for last, first in [("Zeta", "Ana"), ("Öztürk", "Emre"), ("Oberg", "Lena"), ("Müller", "Ute")]:
        make_contact(account, first_name=first, last_name=last)
    make_contact(account, first_name="Émile", last_name="Müller")
    html = tech_client.get(reverse("crm:contact_list")).content.decode()
    shown = order_in(html, ["Émile", "Ute", "Oberg", "Öztürk", "Zeta"])
    assert shown == ["Émile", "Ute", "Oberg", "Öztürk", "Zeta"]


def test_collated_orders_the_queryset_on_this_database():
    for name in [*SHUFFLED, "apfel", "zeta"]:
        make_account(name)
    names = list(Account.objects.order_by(collated("name"), "pk").values_list("name", flat=True))
    assert [n for n in names if n in READERS_ORDER] == READERS_ORDER
    assert names.index("apfel") < names.index("Ärzte") and names.index("Zeta") > names.index(
        "Brightwater"
    )
    descending = Account.objects.order_by(collated("name").desc(), "pk")
    assert [n for n in descending.values_list("name", flat=True) if n in READERS_ORDER] == (
        READERS_ORDER[::-1]
    )


def test_the_sqlite_comparison_follows_the_unicode_collation_algorithm():
    ordered = sorted(SHUFFLED, key=lambda n: n)  # code points: Ä after Z
    assert ordered[-1] == "Ärzte"
    assert sorted(SHUFFLED, key=functools.cmp_to_key(compare)) == READERS_ORDER
    assert compare("Straße", "Strasse") != 0  # distinct texts never tie
    assert compare("", None) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
def test_postgresql_has_the_icu_root_collation():
    with connection.cursor() as cursor:
        cursor.execute("select 1 from pg_collation where collname = 'und-x-icu'")
        assert cursor.fetchone(), "PostgreSQL without ICU: psa.i18n.collation needs und-x-icu"
