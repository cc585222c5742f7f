"""The operators' endpoints: ``/metrics`` (content and protection) and ``/healthz``.

The metrics are read back with Prometheus' own parser and compared with the rows the test
seeded; the protection cases include the hostile ones (a token's prefix, a forged
``X-Forwarded-For`` when no proxy header is configured, garbage in ``Authorization``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
import sys
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.db import connection
from django.db.utils import OperationalError
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from exchange_ext.models import ExchangeConfig, HeldDeletion, MailboxSettings, SyncRun
from exchange_ext.web.monitoring import heartbeat_limit, worker_heartbeat
from tests import clock
from tests.builders import make_resource

pytestmark = pytest.mark.django_db

TOKEN = "m3trics-t0ken-" + "x" * 30


def networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def scrape(client: Client | None = None, **headers: str):
    return (client or Client()).get("/metrics", **headers)


def samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a scrape, parsed by Prometheus' parser."""
    text = response.content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def mailbox(status: str = MailboxSettings.Status.OK, enabled: bool = True, **fields):
    row = MailboxSettings.objects.create(resource=make_resource(), sync_enabled=enabled)
    MailboxSettings.objects.filter(pk=row.pk).update(status=status, **fields)
    return row


def run(box, minutes_ago: float, seconds: float | None, outcome: str, trigger: str, counts=None):
    started = clock.now() - dt.timedelta(minutes=minutes_ago)
    finished = None if seconds is None else started + dt.timedelta(seconds=seconds)
    return SyncRun.objects.create(
        mailbox_settings=box,
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        trigger=trigger,
        counts=counts or {},
    )


# ---- content -------------------------------------------------------------------------------


@override_settings(PSA_METRICS_TOKEN=TOKEN)
def test_metrics_report_the_seeded_runs_mailboxes_held_deletions_and_lockouts():
    ok_box = mailbox(MailboxSettings.Status.OK)
    failing = mailbox(MailboxSettings.Status.FAILING)
    mailbox(MailboxSettings.Status.DISABLED)
    mailbox(MailboxSettings.Status.OK, enabled=False)  # not counted: sync off
    out, T = SyncRun.Outcome, SyncRun.Trigger
    run(ok_box, 5, 3, out.OK, T.SCHEDULED, {"appointment": {"psa": {"created": 2, "updated": 1}}})
    run(ok_box, 20, 40, out.OK, T.SCHEDULED, {"appointment": {"exchange": {"deleted": 4}}})
    run(ok_box, 30, 200, out.PARTIAL, T.SYNC_NOW, {"todo": {"exchange": {"created": 5}}})
    run(failing, 10, 0.5, out.FAILED, T.SCHEDULED)
    run(failing, 1, None, out.RUNNING, T.SCHEDULED)
    # Older than the hour: in no window figure.
    run(ok_box, 90, 3, out.OK, T.SCHEDULED, {"appointment": {"psa": {"created": 100}}})
    HeldDeletion.objects.create(
        mailbox_settings=ok_box,
        folder="calendar",
        kind="appointment",
        psa_id=1,
        op="delete_psa",
        state=HeldDeletion.State.HELD,
    )
    attempt = {"user_agent": "t", "path_info": "/accounts/login/", "get_data": "", "post_data": ""}
    AccessAttempt.objects.create(
        username="locked", ip_address="10.0.0.1", failures_since_start=10, **attempt
    )
    AccessAttempt.objects.create(
        username="typo", ip_address="10.0.0.2", failures_since_start=2, **attempt
    )

    response = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    got = samples(response)
    runs = "psa_exchange_sync_runs"
    assert got[(runs, (("outcome", "ok"), ("trigger", "scheduled")))] == 2
    assert got[(runs, (("outcome", "partial"), ("trigger", "sync_now")))] == 1
    assert got[(runs, (("outcome", "failed"), ("trigger", "scheduled")))] == 1
    assert got[(runs, (("outcome", "running"), ("trigger", "scheduled")))] == 1
    assert got[(runs, (("outcome", "guard_tripped"), ("trigger", "manual")))] == 0
    hist = "psa_exchange_sync_run_duration_seconds"
    assert got[(hist + "_bucket", (("le", "1.0"),))] == 1
    assert got[(hist + "_bucket", (("le", "5.0"),))] == 2
    assert got[(hist + "_bucket", (("le", "60.0"),))] == 3
    assert got[(hist + "_bucket", (("le", "300.0"),))] == 4
    assert got[(hist + "_bucket", (("le", "+Inf"),))] == 4
    assert got[(hist + "_count", ())] == 4
    assert got[(hist + "_sum", ())] == pytest.approx(243.5)
    items = "psa_exchange_sync_items_written"

    def written(kind: str, side: str, action: str) -> float:
        return got[(items, (("action", action), ("kind", kind), ("side", side)))]

    assert written("appointment", "psa", "created") == 2
    assert written("appointment", "psa", "updated") == 1
    assert written("appointment", "exchange", "deleted") == 4
    assert written("todo", "exchange", "created") == 5
    assert written("contact", "psa", "deleted") == 0
    boxes = "psa_exchange_mailboxes"
    assert got[(boxes, (("status", "ok"),))] == 1
    assert got[(boxes, (("status", "failing"),))] == 1
    assert got[(boxes, (("status", "disabled"),))] == 1
    assert got[(boxes, (("status", "never"),))] == 0
    assert got[("psa_exchange_held_deletions", (("state", "held"),))] == 1
    assert got[("psa_exchange_held_deletions", (("state", "pending"),))] == 0
    newest = clock.now() - dt.timedelta(minutes=1)
    last = got[("psa_exchange_sync_last_run_start_timestamp_seconds", ())]
    assert last == pytest.approx(newest.timestamp())
    assert got[("psa_login_lockouts", ())] == 1
    assert got[("psa_login_failure_records", ())] == 2
    assert got[("psa_task_broker_up", ())] == 1
    assert got[("psa_task_queue_depth", ())] == 0


@override_settings(PSA_METRICS_TOKEN=TOKEN)
def test_metrics_of_an_empty_installation_are_zeros_not_errors():
    got = samples(scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))
    assert got[("psa_exchange_sync_run_duration_seconds_count", ())] == 0
    assert got[("psa_exchange_sync_run_duration_seconds_sum", ())] == 0
    assert ("psa_exchange_sync_last_run_start_timestamp_seconds", ()) not in got
    assert got[("psa_exchange_mailboxes", (("status", "ok"),))] == 0


@override_settings(PSA_METRICS_TOKEN=TOKEN)
def test_an_unreachable_broker_is_a_metric_not_a_failed_scrape():
    with mock.patch(
        "psa.monitoring.collectors.get_broker", side_effect=RedisConnectionError("refused")
    ):
        response = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    got = samples(response)
    assert got[("psa_task_broker_up", ())] == 0
    assert ("psa_task_queue_depth", ()) not in got


@override_settings(PSA_METRICS_TOKEN=TOKEN)
def test_a_failing_database_gives_a_503_without_a_trace():
    with mock.patch(
        "exchange_ext.web.monitoring.SyncRun.objects.filter",
        side_effect=OperationalError("could not connect to server: secret-host"),
    ):
        response = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 503
    assert b"secret-host" not in response.content
    assert b"Traceback" not in response.content


# ---- protection ----------------------------------------------------------------------------


def test_metrics_are_off_when_neither_token_nor_addresses_are_configured():
    with override_settings(PSA_METRICS_TOKEN="", PSA_METRICS_ALLOWED_IPS=()):
        assert scrape().status_code == 404
        assert scrape(HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN[:-1]}",  # a prefix of the right token
        f"Bearer {TOKEN}x",  # the right token and more
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN.upper()}",
        "Bearer \u00e9\u00e9\u00e9",  # not ASCII: compared as bytes, refused, no crash
    ],
)
@override_settings(PSA_METRICS_TOKEN=TOKEN, PSA_METRICS_ALLOWED_IPS=())
def test_a_wrong_or_missing_token_is_refused_without_leaking_anything(header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = scrape(**extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.content == b"Unauthorized\n"


@override_settings(PSA_METRICS_TOKEN=TOKEN, PSA_METRICS_ALLOWED_IPS=())
def test_the_right_token_is_accepted_whatever_the_scheme_case():
    assert scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert scrape(HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200


@override_settings(PSA_METRICS_TOKEN="", PSA_METRICS_ALLOWED_IPS=networks("10.1.0.0/16", "::1"))
def test_an_allowed_address_needs_no_token_and_others_are_forbidden():
    assert scrape(REMOTE_ADDR="10.1.2.3").status_code == 200
    assert scrape(REMOTE_ADDR="::1").status_code == 200
    assert scrape(REMOTE_ADDR="::ffff:10.1.2.3").status_code == 200  # IPv4 via an IPv6 socket
    refused = scrape(REMOTE_ADDR="10.2.0.1")
    assert refused.status_code == 403
    assert refused.content == b"Forbidden\n"
    assert scrape(REMOTE_ADDR="not-an-address").status_code == 403
    # No proxy header configured: a forged X-Forwarded-For is not believed.
    forged = scrape(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert forged.status_code == 403


@override_settings(
    PSA_METRICS_TOKEN="",
    PSA_METRICS_ALLOWED_IPS=networks("10.1.0.0/16"),
    CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR",
)
def test_behind_a_proxy_the_configured_header_gives_the_client_address():
    proxy = "192.0.2.1"
    allowed = scrape(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7, 10.1.0.5")
    assert allowed.status_code == 200
    # Only the right-most entry (the proxy's own) counts; a client-supplied left one does not.
    spoofed = scrape(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="10.1.0.5, 198.51.100.7")
    assert spoofed.status_code == 403


@override_settings(PSA_METRICS_TOKEN=TOKEN, PSA_METRICS_ALLOWED_IPS=networks("10.1.0.0/16"))
def test_with_both_configured_either_the_token_or_the_address_suffices():
    assert scrape(REMOTE_ADDR="10.1.0.1").status_code == 200
    assert scrape(REMOTE_ADDR="8.8.8.8", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert scrape(REMOTE_ADDR="8.8.8.8", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


@override_settings(PSA_METRICS_TOKEN=TOKEN)
def test_a_logged_in_administrator_gets_no_metrics_without_the_token(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "r@x.test", "pw"))
    assert scrape(client).status_code == 401


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PSA_METRICS_ALLOWED_IPS", "10.0.0.0/33", "PSA_METRICS_ALLOWED_IPS"),
        ("PSA_METRICS_ALLOWED_IPS", "10.0.0.1/8", "PSA_METRICS_ALLOWED_IPS"),
        ("PSA_METRICS_ALLOWED_IPS", "intranet", "PSA_METRICS_ALLOWED_IPS"),
        ("PSA_METRICS_TOKEN", "short", "PSA_METRICS_TOKEN"),
        ("PSA_METRICS_TOKEN", "a" * 20 + " " + "b" * 20, "PSA_METRICS_TOKEN"),
    ],
)
def test_a_malformed_setting_stops_start_up_with_a_clear_message(variable, value, message):
    env = {**os.environ, variable: value, "DJANGO_SETTINGS_MODULE": "psa.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr.splitlines()[-1]


# ---- /healthz ------------------------------------------------------------------------------


def health(path: str = "/healthz/", **extra):
    response = Client().get(path, **extra)
    return response.status_code, response.json()


def test_healthz_is_ok_with_no_mailbox_even_without_any_worker_heartbeat():
    status, body = health()
    assert status == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "worker": "idle"}}


def test_healthz_answers_without_the_slash_and_without_a_redirect():
    assert health("/healthz")[0] == 200


@override_settings(SECURE_SSL_REDIRECT=True)
def test_healthz_answers_plain_http_although_https_is_enforced():
    response = Client().get("/healthz/")  # the test client speaks plain HTTP
    assert response.status_code == 200
    assert Client().get("/healthz").status_code == 200
    # …while every other page is redirected to HTTPS.
    assert Client().get("/accounts/login/").status_code == 301


def test_healthz_is_ok_when_a_worker_started_a_sync_recently():
    mailbox(enabled_at=clock.now() - dt.timedelta(days=3), last_attempt_at=clock.now())
    assert health() == (
        200,
        {"status": "ok", "checks": {"database": "ok", "broker": "ok", "worker": "ok"}},
    )


def test_healthz_fails_when_a_mailbox_waits_and_no_worker_ran():
    limit = heartbeat_limit(ExchangeConfig.load().sync_interval_minutes)
    long_ago = clock.now() - limit - dt.timedelta(minutes=1)
    mailbox(enabled_at=clock.now() - dt.timedelta(days=3), last_attempt_at=long_ago)
    status, body = health()
    assert status == 503
    assert body == {
        "status": "fail",
        "checks": {"database": "ok", "broker": "ok", "worker": "fail"},
    }


def test_a_mailbox_that_never_ran_fails_the_check_only_once_the_limit_has_passed():
    limit = heartbeat_limit(ExchangeConfig.load().sync_interval_minutes)
    box = mailbox(MailboxSettings.Status.NEVER, enabled_at=clock.now() - dt.timedelta(minutes=1))
    assert worker_heartbeat(clock.now()) == "idle"
    MailboxSettings.objects.filter(pk=box.pk).update(
        enabled_at=clock.now() - limit - dt.timedelta(minutes=1)
    )
    assert worker_heartbeat(clock.now()) == "fail"


def test_no_heartbeat_is_expected_from_disabled_mailboxes_or_a_switched_off_integration():
    long_ago = clock.now() - dt.timedelta(days=3)
    box = mailbox(MailboxSettings.Status.DISABLED, enabled_at=long_ago, last_attempt_at=long_ago)
    assert worker_heartbeat(clock.now()) == "idle"
    MailboxSettings.objects.filter(pk=box.pk).update(status=MailboxSettings.Status.FAILING)
    assert worker_heartbeat(clock.now()) == "fail"
    ExchangeConfig.objects.update_or_create(pk=1, defaults={"enabled": False})
    assert worker_heartbeat(clock.now()) == "idle"


def test_healthz_fails_when_the_broker_is_unreachable():
    with mock.patch(
        "psa.monitoring.health.get_broker", side_effect=RedisConnectionError("refused 10.9.9.9")
    ):
        status, body = health()
    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["broker"] == "fail"
    assert body["checks"]["database"] == "ok"


def test_healthz_fails_when_the_database_does_not_answer_and_says_nothing_more():
    with mock.patch.object(
        connection, "cursor", side_effect=OperationalError("password authentication failed")
    ):
        response = Client().get("/healthz/")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "fail"
    assert response.json()["checks"]["worker"] == "fail"
    assert b"password" not in response.content
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_and_metrics_refuse_posts():
    assert Client().post("/healthz/").status_code == 405
    with override_settings(PSA_METRICS_TOKEN=TOKEN):
        assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_the_health_check_path_is_exempt_from_the_https_redirect_in_settings():
    assert any(p == r"^healthz/?$" for p in settings.SECURE_REDIRECT_EXEMPT)


@override_settings(ALLOWED_HOSTS=["psa.example.test"])
def test_a_load_balancer_sending_its_target_address_as_host_needs_it_in_allowed_hosts():
    """README, "Monitoring": Django checks Host before any view, /healthz included."""
    assert Client().get("/healthz/", HTTP_HOST="10.0.0.9").status_code == 400
    assert Client().get("/healthz/", HTTP_HOST="psa.example.test").status_code == 200
