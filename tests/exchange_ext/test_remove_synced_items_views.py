"""The resource page's **Remove synced items** (docs/sync-rules.md, "Removing synced items"):
the confirmation page counts, per item type, what the extension wrote into the mailbox; the
confirmation turns the chosen types (or the whole resource) off and queues the removal; only
administrators get there, and only with a CSRF token. The page itself deletes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django_q.models import OrmQ

from exchange_ext.jobs.removals import REMOVAL_TASK
from exchange_ext.models import ItemLink, MailboxSettings, SyncLogEntry, SyncRun
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin

pytestmark = pytest.mark.django_db

Origin, State = ItemLink.Origin, ItemLink.State
SWITCHES = ("export_appointments", "export_service_calls", "export_todos", "export_contacts")


@pytest.fixture
def tech() -> MailboxSettings:
    return enable(make_resource("tech1", email="tech1@northwind.example"))


@pytest.fixture
def admin_client() -> Client:
    return client_for(make_exchange_admin("xadmin"))


def url(mailbox: MailboxSettings) -> str:
    return f"/extensions/exchange/resources/{mailbox.resource_id}/remove/"


def page_url(mailbox: MailboxSettings) -> str:
    return f"/extensions/exchange/resources/{mailbox.resource_id}/"


def link(mailbox, kind: str, psa_id: int, *, origin=Origin.PSA, state=State.LINKED) -> ItemLink:
    return ItemLink.objects.create(
        mailbox_settings=mailbox, kind=kind, psa_id=psa_id, exchange_id=f"AAMk{kind}{psa_id}",
        origin=origin, state=state, folder="contacts" if kind == "contact" else "calendar",
    )  # fmt: skip


def synced_links(mailbox) -> None:
    """2 exported appointments, 1 service call, 1 to-do, 3 contacts — plus links that are not
    the extension's writes in the mailbox: an imported appointment, a copy deleted in Exchange
    and an unlinked one."""
    for n in (1, 2):
        link(mailbox, "appointment", n)
    link(mailbox, "service_call", 3)
    link(mailbox, "todo", 4)
    for n in (5, 6, 7):
        link(mailbox, "contact", n)
    link(mailbox, "appointment", 8, origin=Origin.EXCHANGE)
    link(mailbox, "appointment", 9, state=State.EXCHANGE_DELETED)
    link(mailbox, "appointment", 10, origin=Origin.EXCHANGE, state=State.UNLINKED)


def counts_shown(response) -> dict[str, int]:
    return {row.kind.value: row.count for row in response.context["rows"]}


def queued_tasks() -> list[str]:
    return [task.func() for task in OrmQ.objects.all()]


def test_the_resource_page_offers_remove_synced_items_with_the_count(admin_client, tech):
    synced_links(tech)
    html = admin_client.get(page_url(tech)).content.decode()
    assert f'href="{url(tech)}"' in html
    assert "Remove synced items…" in html
    assert "(7 items now)" in html


def test_the_technicians_own_tab_has_no_remove_synced_items(tech):
    html = client_for(tech.resource).get("/profile/exchange/").content.decode()
    assert "/remove/" not in html and "Remove synced items" not in html


def test_the_confirmation_page_counts_only_what_the_extension_wrote_per_item_type(
    admin_client, tech
):
    synced_links(tech)
    response = admin_client.get(url(tech))
    assert response.status_code == 200
    assert counts_shown(response) == {"appointment": 2, "service_call": 1, "todo": 1, "contact": 3}
    html = response.content.decode()
    for kind, count in (("appointment", 2), ("service_call", 1), ("todo", 1), ("contact", 3)):
        assert f'<td data-kind="{kind}">{count}</td>' in html
        assert f'name="kinds" value="{kind}" id="id_kinds_{kind}" checked' in html
    assert '<td data-kind="all">7</td>' in html
    assert "Appointments exported from the PSA" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_a_get_of_the_confirmation_page_changes_nothing(admin_client, tech):
    synced_links(tech)
    admin_client.get(url(tech))
    tech.refresh_from_db()
    assert tech.sync_enabled and all(getattr(tech, name) for name in SWITCHES)
    assert tech.removal_requested_at is None
    assert ItemLink.objects.count() == 10 and not OrmQ.objects.exists()


def test_confirming_one_type_turns_only_that_type_off_and_queues_the_removal(
    admin_client, tech, django_capture_on_commit_callbacks
):
    synced_links(tech)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(tech), {"kinds": ["service_call"]})
    assert response.status_code == 302 and response["Location"] == page_url(tech)
    tech.refresh_from_db()
    assert tech.sync_enabled and not tech.export_service_calls
    assert tech.export_appointments and tech.export_todos and tech.export_contacts
    assert tech.removal_kinds == "service_call" and tech.removal_requested_at is not None
    assert queued_tasks() == [REMOVAL_TASK]
    assert ItemLink.objects.count() == 10  # the web request deletes nothing
    html = admin_client.get(page_url(tech)).content.decode()
    assert "Removal of synced items queued (Service calls)" in html
    assert "Removal of Service calls requested" in html and "1 item to delete" in html


def test_confirming_every_type_turns_the_resource_sync_off(
    admin_client, tech, django_capture_on_commit_callbacks
):
    synced_links(tech)
    kinds = ["appointment", "service_call", "todo", "contact"]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url(tech), {"kinds": kinds})
    tech.refresh_from_db()
    assert not tech.sync_enabled
    assert tech.removal_kinds == "appointment,service_call,todo,contact"
    assert queued_tasks() == [REMOVAL_TASK]


def test_a_second_confirmation_widens_the_pending_request_and_queues_one_task(
    admin_client, tech, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url(tech), {"kinds": ["contact"]})
        admin_client.post(url(tech), {"kinds": ["todo"]})
    tech.refresh_from_db()
    assert tech.removal_kinds == "todo,contact"
    assert not tech.export_todos and not tech.export_contacts and tech.sync_enabled
    assert queued_tasks() == [REMOVAL_TASK]  # one queued task serves both
    html = admin_client.get(url(tech)).content.decode()
    assert "A removal of To-dos, Contacts is already waiting" in html


def test_confirming_without_a_type_is_refused_and_changes_nothing(admin_client, tech):
    synced_links(tech)
    response = admin_client.post(url(tech), {"confirm": "1"})
    assert response.status_code == 400
    assert "Choose at least one item type to remove." in response.content.decode()
    tech.refresh_from_db()
    assert tech.sync_enabled and all(getattr(tech, name) for name in SWITCHES)
    assert tech.removal_requested_at is None and not OrmQ.objects.exists()


def test_an_unknown_type_is_refused(admin_client, tech):
    response = admin_client.post(url(tech), {"kinds": ["appointment", "mail"]})
    assert response.status_code == 400
    tech.refresh_from_db()
    assert tech.removal_requested_at is None and tech.export_appointments


def test_a_resource_that_never_synced_has_nothing_to_remove(admin_client):
    never = make_resource("tech9", email="tech9@northwind.example")
    response = admin_client.get(f"/extensions/exchange/resources/{never.pk}/remove/")
    assert response.status_code == 200 and response.context["total"] == 0
    response = admin_client.post(
        f"/extensions/exchange/resources/{never.pk}/remove/", {"kinds": ["todo"]}
    )
    assert response.status_code == 400
    assert "nothing to remove" in response.content.decode()
    assert not MailboxSettings.objects.filter(resource=never).exists()


def test_an_unknown_resource_is_not_found(admin_client, tech):
    missing = f"/extensions/exchange/resources/{tech.resource_id + 99}/remove/"
    assert admin_client.get(missing).status_code == 404


@pytest.mark.parametrize("who", ["own technician", "colleague", "anonymous"])
def test_only_administrators_reach_the_confirmation_page_or_confirm(who, tech):
    synced_links(tech)
    if who == "anonymous":
        client = Client()
    else:
        resource = tech.resource if who == "own technician" else make_resource("tech2")
        client = client_for(resource)
    get, post = client.get(url(tech)), client.post(url(tech), {"kinds": ["appointment"]})
    if who == "anonymous":
        for response in (get, post):
            assert response.status_code == 302
            assert response["Location"].startswith("/accounts/login/?next=")
    else:
        assert (get.status_code, post.status_code) == (403, 403)
    tech.refresh_from_db()
    assert tech.export_appointments and tech.removal_requested_at is None
    assert not OrmQ.objects.exists()


def test_confirming_without_the_csrf_token_is_refused(tech):
    synced_links(tech)
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_exchange_admin("xadmin").user)
    assert client.post(url(tech), {"kinds": ["todo"]}).status_code == 403
    tech.refresh_from_db()
    assert tech.export_todos and tech.removal_requested_at is None
    token = client.get(url(tech)).context["csrf_token"]
    response = client.post(url(tech), {"kinds": ["todo"], "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    tech.refresh_from_db()
    assert not tech.export_todos and tech.removal_kinds == "todo"


def removal_run(mailbox, outcome, counts, *, errors=0, error="") -> SyncRun:
    started = clock.now() - dt.timedelta(minutes=5)
    return SyncRun.objects.create(
        mailbox_settings=mailbox, started_at=started, finished_at=started, outcome=outcome,
        trigger=SyncRun.Trigger.REMOVAL, counts=counts, errors=errors, error=error,
    )  # fmt: skip


def test_the_resource_page_shows_the_latest_result_and_lists_what_could_not_be_removed(
    admin_client, tech
):
    counts = {"appointment": {"exchange": {"deleted": 3, "gone": 1}}}
    run = removal_run(tech, SyncRun.Outcome.PARTIAL, counts, errors=1)
    SyncLogEntry.objects.create(
        run=run, level="error", kind="appointment", psa_key="appointment:7",
        message="Not removed: Exchange refused to delete it (access denied).",
    )  # fmt: skip
    html = admin_client.get(page_url(tech)).content.decode()
    assert "3 items deleted from the mailbox, 1 already gone." in html
    assert "1 item could not be removed" in html
    assert "appointment:7: Not removed: Exchange refused to delete it (access denied)." in html
    # and in the sync log, marked as a removal
    assert "Remove synced items: Some items failed" in html


def test_the_resource_page_shows_a_removal_in_progress(admin_client, tech):
    synced_links(tech)
    MailboxSettings.objects.filter(pk=tech.pk).update(
        removal_kinds="contact", removal_requested_at=clock.now()
    )
    counts = {"contact": {"exchange": {"deleted": 2}}}
    removal_run(tech, SyncRun.Outcome.RUNNING, counts)
    html = admin_client.get(page_url(tech)).content.decode()
    assert "Removing synced items: 2 items removed so far, 3 left." in html


def test_a_failed_removal_shows_its_error(admin_client, tech):
    error = "The Exchange server could not be reached; the next run retries."
    removal_run(tech, SyncRun.Outcome.FAILED, {}, error=error)
    html = admin_client.get(page_url(tech)).content.decode()
    assert f"failed: {error}" in html
