"""Live feedback after "Sync now" and "Test connection" (issue 15, item 1): the settings page
shows where the mailbox's sync stands (requested → queued → running → done) in a block that
polls its fragment URL while something is pending; the fragment answers 286 once settled so
htmx stops polling. Without JavaScript the page itself renders the same block."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext.models import MailboxSettings, SyncRun
from exchange_ext.web import views
from exchange_ext.web.connection_test import ConnectionReport
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin, store_config

pytestmark = pytest.mark.django_db
PROFILE = "/profile/exchange/"
PROGRESS = PROFILE + "progress/"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def tech():
    return make_resource("tech1", email="tech1@northwind.example")


@pytest.fixture
def tech_client(tech):
    return client_for(tech)


def run_of(settings: MailboxSettings, **fields) -> SyncRun:
    started = clock.now() - dt.timedelta(minutes=1)
    defaults = {"started_at": started, "finished_at": started + dt.timedelta(seconds=12),
                "trigger": SyncRun.Trigger.SYNC_NOW, "outcome": SyncRun.Outcome.OK}  # fmt: skip
    return SyncRun.objects.create(mailbox_settings=settings, **{**defaults, **fields})


def polls(html: str) -> bool:
    return 'hx-trigger="every 2s"' in html


def test_a_requested_sync_polls_and_says_it_waits_to_be_queued(tech_client, tech):
    enable(tech, sync_requested_at=clock.now())
    response = tech_client.get(PROGRESS, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-stage="requested"' in html and "waiting to be queued" in html
    assert polls(html) and f'hx-get="{PROGRESS}"' in html


def test_a_queued_sync_polls_and_says_it_waits_for_a_worker(tech_client, tech):
    enable(tech, sync_requested_at=clock.now(), queued_at=clock.now())
    response = tech_client.get(PROGRESS, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-stage="queued"' in html and "waiting for a worker" in html
    assert polls(html)


def test_a_running_sync_polls_and_says_since_when(tech_client, tech):
    settings = enable(tech, lease_holder="worker-1",
                      lease_expires_at=clock.now() + dt.timedelta(minutes=5))  # fmt: skip
    run_of(settings, finished_at=None, outcome=SyncRun.Outcome.RUNNING)
    response = tech_client.get(PROGRESS, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-stage="running"' in html and "Running since" in html
    assert polls(html)


def test_a_finished_run_stops_the_polling_with_286_and_tells_what_it_did(tech_client, tech):
    settings = enable(tech)
    counts = {"appointment": {"exchange": {"created": 2}, "psa": {"updated": 1}}}
    run_of(settings, counts=counts, conflicts=1)
    response = tech_client.get(PROGRESS, **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert 'data-stage="done"' in html and not polls(html)
    assert "OK" in html and "12 s" in html
    assert "In the PSA: 1 updated" in html and "In Exchange: 2 created" in html
    assert "1 conflict" in html
    # the page's sync log comes along, swapped out of band: it follows without a reload
    assert '<section id="sync-log"' in html and 'hx-swap-oob="true"' in html


def test_a_failed_run_stops_the_polling_and_shows_the_error_in_plain_words(tech_client, tech):
    settings = enable(tech)
    error = "The server rejected the username or password. Check them on this page."
    run_of(settings, outcome=SyncRun.Outcome.FAILED, error=error)
    response = tech_client.get(PROGRESS, **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert "Failed" in html and error in html and not polls(html)
    assert "Traceback" not in html


def test_a_lease_that_expired_is_not_shown_as_running(tech_client, tech):
    """A worker that died leaves its lease behind: the block must not poll for ever."""
    settings = enable(tech, lease_holder="worker-1",
                      lease_expires_at=clock.now() - dt.timedelta(minutes=1))  # fmt: skip
    run_of(settings, finished_at=None, outcome=SyncRun.Outcome.RUNNING)
    response = tech_client.get(PROGRESS, **HTMX)
    assert response.status_code == 286
    assert "The worker stopped during this run" in response.content.decode()


def test_a_request_that_can_never_run_does_not_poll(tech_client, tech):
    """A request left behind when the integration was turned off would poll for ever."""
    enable(tech, sync_requested_at=clock.now(), queued_at=clock.now())
    store_config(enabled=False)
    response = tech_client.get(PROGRESS, **HTMX)
    assert response.status_code == 286
    assert 'data-stage="idle"' in response.content.decode()


def test_without_htmx_the_page_itself_renders_the_status_block(tech_client, tech):
    enable(tech, sync_requested_at=clock.now(), queued_at=clock.now())
    html = tech_client.get(PROFILE).content.decode()
    assert 'id="sync-progress"' in html and 'data-stage="queued"' in html
    assert "waiting for a worker" in html
    assert 'src="/static/vendor/htmx.min.js"' in html
    assert 'id="sync-log"' in html and "hx-swap-oob" not in html


def test_sync_now_from_htmx_answers_with_the_polling_block_instead_of_a_redirect(tech_client, tech):
    enable(tech)
    response = tech_client.post(PROFILE + "sync/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="sync-progress"' in html and 'data-stage="queued"' in html and polls(html)
    settings = MailboxSettings.objects.get(resource=tech)
    assert settings.sync_requested_at is not None and settings.queued_at is not None
    # the message is for full pages only: it must not wait for the next page load
    assert "it will start within a minute" not in tech_client.get(PROFILE).content.decode()


def test_sync_now_without_javascript_still_redirects_with_a_message(tech_client, tech):
    enable(tech)
    response = tech_client.post(PROFILE + "sync/", follow=True)
    assert response.redirect_chain == [(PROFILE, 302)]
    html = response.content.decode()
    assert "Sync requested; it will start within a minute." in html
    assert 'data-stage="queued"' in html


def test_a_refused_sync_now_from_htmx_says_why_in_place(tech_client, tech):
    response = tech_client.post(PROFILE + "sync/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert "Sync is not enabled for this resource." in html and not polls(html)


def test_test_connection_from_htmx_answers_with_the_result_area_only(
    tech_client, tech, monkeypatch
):
    store_config(use_for_all_users=False)
    report = ConnectionReport(ok=False, message="Exchange rejected the password.",
                              field_errors={"password": "Check your password."})  # fmt: skip
    monkeypatch.setattr(views, "probe_mailbox_connection", lambda settings, config: report)
    response = tech_client.post(PROFILE + "test/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Connection test failed: Exchange rejected the password." in html
    assert "Check your password." in html
    assert "<form" not in html and "<html" not in html
    assert "Connection test" not in tech_client.get(PROFILE).content.decode()  # no stray message


def test_a_passed_connection_test_from_htmx_says_so(tech_client, tech, monkeypatch):
    report = ConnectionReport(ok=True, message="Mailbox reached.")
    monkeypatch.setattr(views, "probe_mailbox_connection", lambda settings, config: report)
    html = tech_client.post(PROFILE + "test/", **HTMX).content.decode()
    assert "Connection test passed. Mailbox reached." in html and "xe-ok-box" in html


def test_the_fragment_shows_only_the_viewers_own_mailbox(tech_client, tech):
    """The profile fragment has no id: a colleague's queued sync never shows in it."""
    enable(tech)
    other = make_resource("tech2", email="tech2@northwind.example")
    enable(other, sync_requested_at=clock.now(), queued_at=clock.now())
    run_of(MailboxSettings.objects.get(resource=other), outcome=SyncRun.Outcome.FAILED,
           error="Secret colleague error")  # fmt: skip
    html = tech_client.get(PROGRESS, **HTMX).content.decode()
    assert 'data-stage="idle"' in html and "Secret colleague error" not in html


def test_a_technician_cannot_read_a_colleagues_progress_on_the_admin_url(tech_client):
    other = make_resource("tech2", email="tech2@northwind.example")
    enable(other)
    url = f"/extensions/exchange/resources/{other.pk}/progress/"
    assert tech_client.get(url, **HTMX).status_code == 403


def test_an_admin_reads_any_resources_progress_and_polls_the_admin_url(tech):
    enable(tech, sync_requested_at=clock.now(), queued_at=clock.now())
    admin_client = client_for(make_exchange_admin())
    url = f"/extensions/exchange/resources/{tech.pk}/progress/"
    response = admin_client.get(url, **HTMX)
    assert response.status_code == 200 and f'hx-get="{url}"' in response.content.decode()
    page = admin_client.get(f"/extensions/exchange/resources/{tech.pk}/").content.decode()
    assert f'hx-get="{url}"' in page and 'data-stage="queued"' in page
