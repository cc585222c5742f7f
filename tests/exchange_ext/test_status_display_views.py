"""Statuses distinct at a glance (SPEC §3.3; issue 15 item 2): not enabled · waiting for the first
sync · OK · failing (retrying) · stopped (permanent error, with the fix in plain words) · held by
the deletion guard — each with its label and its fix on the Resources tab, the resource's page
and the technician's profile tab; a failed run's row shows its error, never "Errors 0"."""

from __future__ import annotations

from html import unescape

import pytest

from exchange_ext.backends.base import AuthFailed, MailboxNotFound, Unavailable
from exchange_ext.models import HeldDeletion, MailboxSettings, SyncRun
from exchange_ext.web.status_display import State, status_display
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin, store_config

pytestmark = pytest.mark.django_db
RESOURCES = "/extensions/exchange/resources/"
PROFILE = "/profile/exchange/"

#: state → (its label, a piece of its fix) as the pages show them (English).
EXPECTED = {
    State.NOT_ENABLED: ("Sync not enabled", "An administrator enables the resource"),
    State.WAITING: ("Waiting for the first sync", "the first sync starts within the sync interval"),
    State.OK: ("OK", "Nothing to do: the sync works."),
    State.FAILING: ("Failing, retrying", "The next run retries by itself."),
    State.STOPPED: ("Stopped", "Check the mailbox address on the resource's MS Exchange tab."),
    State.HELD: ("Held by the deletion guard", "chooses Confirm deletions or Restore"),
}


def put_in_state(resource, state: State) -> MailboxSettings | None:
    """``resource``'s mailbox in ``state`` as the runner leaves it."""
    if state is State.NOT_ENABLED:
        return None
    fields: dict[str, object] = {"mailbox": f"{resource.user.username}@northwind.example"}
    if state is State.WAITING:
        fields |= {"status": "never"}
    elif state is State.OK:
        fields |= {"status": "ok", "last_attempt_at": clock.now(), "last_success_at": clock.now()}
    elif state is State.FAILING:
        fields |= {"status": "failing", "last_error_kind": Unavailable.kind,
                   "last_error": "The Exchange server could not be reached; the next run retries.",
                   "last_attempt_at": clock.now()}  # fmt: skip
    elif state is State.STOPPED:
        fields |= {"status": "disabled", "last_error_kind": MailboxNotFound.kind,
                   "last_error": "The mailbox was not found on the Exchange server.",
                   "last_attempt_at": clock.now()}  # fmt: skip
    elif state is State.HELD:
        fields |= {"status": "held", "last_attempt_at": clock.now(),
                   "last_error": "Held 30 deletions for an administrator."}  # fmt: skip
    settings = enable(resource, **fields)
    if state is State.HELD:
        HeldDeletion.objects.create(
            mailbox_settings=settings, folder="calendar", kind="appointment", psa_id=1,
            op=HeldDeletion.Op.DELETE_PSA, title="Board meeting", state=HeldDeletion.State.HELD,
        )  # fmt: skip
    return settings


def page_text(response) -> str:
    assert response.status_code == 200
    return unescape(response.content.decode())


def badge(state: State) -> str:
    return f"xe-state-{state.value}"


@pytest.fixture
def admin():
    return make_exchange_admin()


@pytest.mark.parametrize("state", list(State))
def test_the_resources_tab_shows_each_status_with_its_label_and_fix(admin, state):
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    put_in_state(tech, state)
    html = page_text(client_for(admin).get(RESOURCES))
    row = html[html.index("Jonas Brandt") :]
    row = row[: row.index("</tr>")]
    label, fix = EXPECTED[state]
    assert badge(state) in row and f"</span> {label}</span>" in row
    if state is not State.OK:
        assert fix in row


@pytest.mark.parametrize("state", list(State))
def test_the_resources_page_of_an_admin_shows_each_status_with_its_fix(admin, state):
    tech = make_resource("tech1")
    put_in_state(tech, state)
    html = page_text(client_for(admin).get(f"{RESOURCES}{tech.pk}/"))
    label, fix = EXPECTED[state]
    assert badge(state) in html and f"</span> {label}</span>" in html
    assert "What to do:" in html and fix in html
    assert "Sync enabled" not in html  # the old badge that hid every error


@pytest.mark.parametrize("state", list(State))
def test_the_technicians_profile_tab_shows_each_status_with_its_fix(state):
    tech = make_resource("tech1")
    put_in_state(tech, state)
    html = page_text(client_for(tech).get(PROFILE))
    label, fix = EXPECTED[state]
    assert badge(state) in html and f"</span> {label}</span>" in html
    assert "What to do:" in html and fix in html


def test_a_stopped_resource_does_not_look_like_one_never_enabled(admin):
    never = make_resource("never", first_name="Nora", last_name="Never")
    stopped = make_resource("stopped", first_name="Sven", last_name="Stopped")
    put_in_state(stopped, State.STOPPED)
    html = page_text(client_for(admin).get(RESOURCES))
    never_row = html[html.index("Nora Never") :][:2000].split("</tr>")[0]
    stopped_row = html[html.index("Sven Stopped") :][:2000].split("</tr>")[0]
    assert badge(State.NOT_ENABLED) in never_row and badge(State.STOPPED) not in never_row
    assert badge(State.STOPPED) in stopped_row and badge(State.NOT_ENABLED) not in stopped_row
    assert "Disabled" not in stopped_row
    assert never.pk != stopped.pk


def test_a_refused_login_with_the_shared_account_points_at_the_general_tab(admin):
    store_config(use_for_all_users=True)
    tech = make_resource("tech1")
    enable(tech, status="disabled", last_error_kind=AuthFailed.kind, last_error="401")
    html = page_text(client_for(admin).get(f"{RESOURCES}{tech.pk}/"))
    assert "Check the sync account's username and password on the General tab." in html
    assert "Then save the resource's MS Exchange settings" in html


def test_a_stop_of_the_shared_credentials_names_the_general_tab_not_the_resource():
    settings = MailboxSettings(
        sync_enabled=True, status="disabled", last_error_kind="SharedCredentialsRefused"
    )
    shown = status_display(settings, config=store_config())
    assert shown.state is State.STOPPED
    assert "General tab" in shown.fix and "save the resource's" not in shown.fix


def test_an_unknown_stored_error_kind_still_gets_a_fix():
    """A kind written by an older or newer version (or by hand) must not break the pages."""
    settings = MailboxSettings(sync_enabled=True, status="failing", last_error_kind="Gremlins")
    shown = status_display(settings, config=store_config())
    assert shown.state is State.FAILING and "recent sync log" in shown.fix


def test_held_rows_show_the_guard_even_after_a_later_run_set_ok(admin):
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    settings = put_in_state(tech, State.HELD)
    MailboxSettings.objects.filter(pk=settings.pk).update(status="ok")
    html = page_text(client_for(admin).get(RESOURCES))
    assert badge(State.HELD) in html


def test_a_failed_runs_row_shows_its_error_not_errors_zero():
    tech = make_resource("tech1")
    settings = put_in_state(tech, State.STOPPED)
    SyncRun.objects.create(
        mailbox_settings=settings, started_at=clock.now(), finished_at=clock.now(),
        outcome=SyncRun.Outcome.FAILED, trigger=SyncRun.Trigger.SCHEDULED, errors=0,
        error="The mailbox was not found on the Exchange server. ErrorNonExistentMailbox",
    )  # fmt: skip
    html = page_text(client_for(tech).get(PROFILE))
    log = html[html.index('id="sync-log-title"') :]
    row = log[log.index("<tbody>") :].split("</tr>")[0]
    cells = row.split("<td")
    errors_cell = cells[-1]
    assert "ErrorNonExistentMailbox" in errors_cell
    assert not errors_cell.split(">", 1)[1].startswith("0")
    assert row.count("ErrorNonExistentMailbox") == 1  # shown once, in the Errors column
