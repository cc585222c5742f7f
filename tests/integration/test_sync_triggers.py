"""Every run records its true cause (issue 15, item 3; docs/sync-rules.md, "Scheduling, leases
and budgets"): each cause queues through the broker, a worker runs the task, and the run's
trigger and the resource's sync log say why it ran. Causes that coalesce keep the first.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import translation
from django_q.models import OrmQ

from exchange_ext.backends import factory
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.jobs import dispatcher
from exchange_ext.models import MailboxSettings, SyncRun, format_duration
from exchange_ext.templatetags.exchange_runs import seconds_format
from psa.audit.origin import Origin
from psa.scheduling.actions import do_update_appointment
from tests.builders import make_appointment, make_resource
from tests.clock import now
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin, store_config
from tests.integration.prompt_syncs import run_queued_syncs

pytestmark = pytest.mark.django_db
Trigger = SyncRun.Trigger


@pytest.fixture
def tech(monkeypatch: pytest.MonkeyPatch):
    """A technician whose mailbox lives in a MemoryBackend, the integration on."""
    store_config(enabled=True, server_address="mail.example.test", use_for_all_users=True)
    resource = make_resource("trig", email="trig@example.test")
    backend = MemoryBackend([resource.email])
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    return resource


def triggers_of(resource) -> list[str]:
    return list(
        SyncRun.objects.filter(mailbox_settings__resource=resource)
        .order_by("pk")
        .values_list("trigger", flat=True)
    )


def test_enabling_a_resource_runs_a_sync_recorded_as_resource_enabled(
    tech, django_capture_on_commit_callbacks
):
    admin = client_for(make_exchange_admin())
    with django_capture_on_commit_callbacks(execute=True):
        admin.post("/extensions/exchange/resources/", {"shown": [tech.pk], "enabled": [tech.pk]})
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.RESOURCE_ENABLED]
    html = admin.get(f"/extensions/exchange/resources/{tech.pk}/").content.decode()
    assert "<td>Resource enabled</td>" in html and "<td>Scheduled</td>" not in html


def test_saving_the_profile_tab_runs_a_sync_recorded_as_settings_saved(
    tech, django_capture_on_commit_callbacks
):
    enable(tech)
    client = client_for(tech)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/profile/exchange/", {"mailbox": tech.email, "past_days": "3"})
    assert response.status_code == 302
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.SETTINGS_SAVED]
    assert "<td>Settings saved</td>" in client.get("/profile/exchange/").content.decode()


def test_a_general_tab_save_is_a_settings_saved_run_through_the_dispatcher(
    tech, django_capture_on_commit_callbacks
):
    enable(tech)
    dispatcher.after_config_saved(["sync_interval_minutes"])
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.queue_due(now()) == [tech.exchange_settings.pk]
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.SETTINGS_SAVED]


def test_a_psa_appointment_change_runs_a_sync_recorded_as_psa_change(
    tech, django_capture_on_commit_callbacks
):
    enable(tech)
    with django_capture_on_commit_callbacks(execute=True):
        make_appointment(tech, title="Boiler check")
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.PSA_CHANGE]


def test_sync_now_runs_a_sync_recorded_as_sync_now(tech, django_capture_on_commit_callbacks):
    enable(tech)
    client = client_for(tech)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/profile/exchange/sync/")
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.SYNC_NOW]
    assert "<td>Sync now</td>" in client.get("/profile/exchange/").content.decode()


def test_a_lost_sync_now_task_is_queued_again_by_the_dispatcher_still_as_sync_now(
    tech, django_capture_on_commit_callbacks
):
    settings = enable(tech)
    client_for(tech).post("/profile/exchange/sync/")  # no commit callbacks: the task is lost
    stale = now() + dispatcher.queued_stale_after() + dt.timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.queue_due(stale) == [settings.pk]
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.SYNC_NOW]


def test_the_dispatchers_slot_is_recorded_as_scheduled(tech, django_capture_on_commit_callbacks):
    settings = enable(tech)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.queue_due(now()) == [settings.pk]
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.SCHEDULED]


def test_coalesced_causes_keep_the_first_queued_cause(tech, django_capture_on_commit_callbacks):
    settings = enable(tech)
    client = client_for(tech)
    with django_capture_on_commit_callbacks(execute=True):
        appointment = make_appointment(tech, title="First")  # queued: "PSA change"
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/profile/exchange/sync/")  # already queued: adds no task
        do_update_appointment(Origin.by_user(tech.user), appointment, title="Second")  # nor this
        assert dispatcher.queue_due(now()) == []  # nor the dispatcher
    assert OrmQ.objects.count() == 1
    assert run_queued_syncs() and triggers_of(tech) == [Trigger.PSA_CHANGE]
    # The one run served the Sync now request too: nothing is queued for it afterwards.
    assert MailboxSettings.objects.get(pk=settings.pk).sync_requested_at is None
    # At the pinned clock, which is before the run's own attempt: a later instant could meet
    # the mailbox's next polling slot (its place in the interval depends on its id) and queue
    # a scheduled run, which would say nothing about the served request.
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.queue_due(now()) == []
    # A cause after the run claimed the mailbox is not coalesced: its own run, its own name.
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/profile/exchange/sync/")
    run_queued_syncs()
    assert triggers_of(tech) == [Trigger.PSA_CHANGE, Trigger.SYNC_NOW]


def test_an_unknown_stored_request_trigger_falls_back_to_sync_now(tech):
    settings = enable(tech)
    MailboxSettings.objects.filter(pk=settings.pk).update(sync_requested_at=now())
    assert dispatcher.requested_triggers() == {settings.pk: Trigger.SYNC_NOW}


# ---- the log: trigger, duration, start to the second ----------------------------------------


def test_the_run_log_shows_trigger_duration_and_start_with_seconds(tech):
    settings = enable(tech)
    start = dt.datetime(2026, 3, 4, 10, 20, 7, tzinfo=dt.UTC)  # 11:20:07 in Berlin
    SyncRun.objects.create(
        mailbox_settings=settings, trigger=Trigger.RESOURCE_ENABLED, outcome="ok",
        started_at=start, finished_at=start + dt.timedelta(seconds=65),
    )  # fmt: skip
    SyncRun.objects.create(
        mailbox_settings=settings, trigger=Trigger.PSA_CHANGE, outcome="ok",
        started_at=start + dt.timedelta(minutes=5),
        finished_at=start + dt.timedelta(minutes=5, seconds=12),
    )  # fmt: skip
    SyncRun.objects.create(
        mailbox_settings=settings,
        trigger=Trigger.SYNC_NOW,
        started_at=start + dt.timedelta(hours=1),
    )
    html = client_for(tech).get("/profile/exchange/").content.decode()
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows if "<td>" in row]
    assert [c[1:3] for c in cells] == [
        ["Sync now", "running"],
        ["PSA change", "12 s"],
        ["Resource enabled", "1 min 5 s"],
    ]
    assert ">04/03/2026 11:20:07</time>" in html  # the viewer's zone (Berlin), to the second
    assert '<th scope="col">Duration</th>' in html


def test_the_status_tab_shows_the_trigger_and_duration_too(tech):
    settings = enable(tech)
    SyncRun.objects.create(
        mailbox_settings=settings, trigger=Trigger.SETTINGS_SAVED, outcome="ok",
        started_at=now(), finished_at=now() + dt.timedelta(seconds=3),
    )  # fmt: skip
    html = client_for(make_exchange_admin()).get("/extensions/exchange/status/").content.decode()
    assert "<td>Settings saved</td>" in html and "<td>3 s</td>" in html


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.9, "0 s"), (12, "12 s"), (60, "1 min"), (65, "1 min 5 s"),
     (3600, "1 h"), (3725, "1 h 2 min"), (-4, "0 s")],
)  # fmt: skip
def test_durations_read_naturally(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "04/03/2026 11:20:07"),
        ("en-us", "03/04/2026 11:20:07 AM"),
        ("de", "04.03.2026 11:20:07"),
        ("ja", "2026/03/04 11:20:07"),
        ("zh-hans", "2026年3月4日 11:20:07"),
    ],
)
def test_every_language_has_a_short_date_and_time_with_seconds(language, expected):
    from django.template import Context, Template

    value = dt.datetime(2026, 3, 4, 10, 20, 7, tzinfo=dt.UTC)
    template = Template(
        "{% load tz exchange_runs %}{% timezone 'Europe/Berlin' %}{{ v|datetime_seconds }}"
        "{% endtimezone %}"
    )
    with translation.override(language):
        assert seconds_format().endswith("s") or seconds_format().endswith("A")
        assert template.render(Context({"v": value})) == expected
