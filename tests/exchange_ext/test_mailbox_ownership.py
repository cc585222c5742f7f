"""Whose mailbox a sync opens (docs/security.md, "Whose mailbox"): stored when an administrator
enables the resource, read-only for the technician, changed by administrators only after a
connection test of the new address, one mailbox per resource, and no back door through the
Django admin. The end-to-end attack over EWS and Graph is in
tests/integration/sync_rules/test_mailbox_ownership.py."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.web import views
from exchange_ext.web.connection_test import ConnectionReport
from exchange_ext.web.enrollment import refused_enrollments, set_enabled_resources
from psa.resources.actions import do_update_resource
from tests.builders import TESTS, make_admin, make_resource
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin, store_config

pytestmark = pytest.mark.django_db
PROFILE = "/profile/exchange/"


def settings_post(mailbox: str, **overrides: str) -> dict[str, str]:
    data = {"mailbox": mailbox, "username": "", "password": "",
            "export_appointments": "on", "import_appointments": "on",
            "export_service_calls": "on", "export_todos": "on", "export_contacts": "on",
            "past_days": "", "recurring_days": ""}  # fmt: skip
    return {**data, **overrides}


@pytest.fixture
def tech():
    return make_resource("tech1", email="Tech1@Northwind.example")


@pytest.fixture
def probes(monkeypatch):
    """Connection tests the resource page runs, answered ``ok`` unless told otherwise."""
    seen: list[str] = []
    answer = {"report": ConnectionReport(True, "Connected.")}

    def probe(settings: MailboxSettings, config: ExchangeConfig) -> ConnectionReport:
        seen.append(settings.effective_mailbox)
        return answer["report"]

    monkeypatch.setattr(views, "probe_mailbox_connection", probe)
    return seen, answer


def admin_page(resource) -> str:
    return f"/extensions/exchange/resources/{resource.pk}/"


# --- enabling stores the mailbox ------------------------------------------------------------


def test_enabling_stores_the_psa_email_of_that_moment_lower_cased(tech):
    [settings] = set_enabled_resources([tech.pk], [])
    assert settings.mailbox == "tech1@northwind.example"
    do_update_resource(TESTS, tech, email="someone.else@northwind.example")
    settings.refresh_from_db()
    assert settings.effective_mailbox == "tech1@northwind.example"


def test_enabling_again_keeps_the_stored_mailbox(tech):
    set_enabled_resources([tech.pk], [])
    set_enabled_resources([], [tech.pk])
    do_update_resource(TESTS, tech, email="renamed@northwind.example")
    [settings] = set_enabled_resources([tech.pk], [])
    assert settings.mailbox == "tech1@northwind.example"
    assert MailboxSettings.objects.get().mailbox == "tech1@northwind.example"


def test_a_resource_whose_address_is_another_resources_mailbox_is_not_enabled(tech):
    owner = make_resource("tech2", email="tech2@northwind.example")
    enable(owner, mailbox="tech1@northwind.example")  # an admin moved tech2 onto that mailbox
    assert "already belongs to" in refused_enrollments([tech.pk])[tech.pk]
    assert set_enabled_resources([tech.pk], []) == []
    assert not MailboxSettings.objects.filter(resource=tech).exists()


def test_the_resources_tab_says_why_a_resource_was_not_enabled(tech):
    owner = make_resource("tech2", email="tech2@northwind.example")
    enable(owner, mailbox="tech1@northwind.example")
    client = client_for(make_exchange_admin())
    response = client.post(
        "/extensions/exchange/resources/", {"shown": [tech.pk], "enabled": [tech.pk]}, follow=True
    )
    html = response.content.decode()
    assert "Not enabled:" in html and "tech1@northwind.example already belongs to" in html


def test_the_database_refuses_one_mailbox_for_two_resources(tech):
    enable(tech)
    other = make_resource("tech2", email="tech2@northwind.example")
    with pytest.raises(IntegrityError), transaction.atomic():
        MailboxSettings.objects.create(resource=other, mailbox="TECH1@northwind.example")


# --- the technician sees it read-only -------------------------------------------------------


def test_the_technician_sees_the_mailbox_read_only_and_cannot_post_another(tech, probes):
    settings = enable(tech)
    client = client_for(tech)
    html = client.get(PROFILE).content.decode()
    field = html.split('name="mailbox"')[1].split(">")[0]
    assert "disabled" in field and "only an administrator changes it" in html
    response = client.post(PROFILE, settings_post("ceo@northwind.example"))
    assert response.status_code == 302
    settings.refresh_from_db()
    assert settings.mailbox == "tech1@northwind.example"
    assert probes[0] == []  # nothing was even tested


# --- administrators change it after a connection test ---------------------------------------


def test_an_administrator_moves_the_mailbox_after_its_connection_test_passes(tech, probes):
    settings = enable(tech)
    response = client_for(make_exchange_admin()).post(
        admin_page(tech), settings_post("Jonas.Brandt@northwind.example")
    )
    assert response.status_code == 302
    settings.refresh_from_db()
    assert settings.mailbox == "jonas.brandt@northwind.example"
    assert probes[0] == ["jonas.brandt@northwind.example"]  # the new address was tested


def test_a_new_mailbox_that_fails_its_connection_test_is_not_saved(tech, probes):
    settings = enable(tech)
    probes[1]["report"] = ConnectionReport(False, "No mailbox ghost@northwind.example.")
    response = client_for(make_exchange_admin()).post(
        admin_page(tech), settings_post("ghost@northwind.example")
    )
    assert response.status_code == 400
    [error] = response.context["form"].errors["mailbox"]
    assert "connection test of ghost@northwind.example failed" in error and "No mailbox" in error
    settings.refresh_from_db()
    assert settings.mailbox == "tech1@northwind.example"


def test_an_administrator_cannot_give_one_mailbox_to_two_resources(tech, probes):
    enable(tech)
    other = make_resource("tech2", email="tech2@northwind.example")
    enable(other)
    response = client_for(make_exchange_admin()).post(
        admin_page(other), settings_post("tech1@northwind.example")
    )
    assert response.status_code == 400
    assert "already the mailbox of" in response.context["form"].errors["mailbox"][0]
    assert probes[0] == []


def test_the_resource_page_shows_administrators_a_changed_psa_email(tech):
    enable(tech)
    do_update_resource(TESTS, tech, email="new.address@northwind.example")
    html = client_for(make_exchange_admin()).get(admin_page(tech)).content.decode()
    assert "is now new.address@northwind.example" in html
    assert "still opens tech1@northwind.example" in html
    assert "still opens" not in client_for(tech).get(PROFILE).content.decode()


# --- the Django admin is no back door -------------------------------------------------------


def test_the_django_admin_shows_mailbox_and_enabling_read_only(tech):
    settings = enable(tech)
    client = client_for(make_admin())
    url = f"/admin/exchange_ext/mailboxsettings/{settings.pk}/change/"
    html = client.get(url).content.decode()
    assert 'name="mailbox"' not in html and 'name="sync_enabled"' not in html
    client.post(url, {"mailbox": "ceo@northwind.example", "sync_enabled": "on",
                      "username": "", "export_appointments": "on"})  # fmt: skip
    settings.refresh_from_db()
    assert settings.mailbox == "tech1@northwind.example"
    assert client.get("/admin/exchange_ext/mailboxsettings/add/").status_code == 403


@pytest.mark.parametrize(
    ("field", "value"),
    [("server_address", "https://exchange.example.com/owa?x=<script>"),
     ("notification_emails", "not-an-address; ops@example.com")],
)  # fmt: skip
def test_the_django_admin_applies_the_general_tabs_validators(field, value):
    config = store_config(server_address="mail.northwind.example")
    client = client_for(make_admin())
    url = f"/admin/exchange_ext/exchangeconfig/{config.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value not in (None, False)}
    data[field] = value
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with its error
    assert field in response.context["adminform"].form.errors
    config.refresh_from_db()
    assert getattr(config, field) != value


# --- the upgrade ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_stores_each_enabled_mailbox_and_stops_a_second_claim():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("exchange_ext", "0005_public_contacts_folder")],
        [("exchange_ext", "0006_mailbox_stored")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    settings_model = old.get_model("exchange_ext", "MailboxSettings")  # same columns as 0006
    resource_model, user_model = (
        old.get_model("resources", "Resource"),
        old.get_model("auth", "User"),
    )

    def resource(name: str, email: str):
        user = user_model.objects.create(username=name)
        return resource_model.objects.create(user=user, first_name=name, last_name="X", email=email)

    first = settings_model.objects.create(
        resource=resource("a", "A@northwind.example"), sync_enabled=True
    )
    second = settings_model.objects.create(
        resource=resource("b", "b@northwind.example"), sync_enabled=True,
        mailbox="a@northwind.example",
    )  # fmt: skip
    idle = settings_model.objects.create(resource=resource("c", "c@northwind.example"))
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    rows = {row.pk: row for row in settings_model.objects.all()}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the latest schema
    assert (rows[first.pk].mailbox, rows[first.pk].sync_enabled) == ("a@northwind.example", True)
    assert (rows[second.pk].mailbox, rows[second.pk].sync_enabled) == ("", False)
    assert rows[second.pk].status == "disabled" and "also belonged to" in rows[second.pk].last_error
    assert rows[idle.pk].mailbox == ""
