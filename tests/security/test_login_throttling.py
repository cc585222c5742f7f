"""Repeated wrong passwords lock a login from one client address (SPEC §8; django-axes).

A login is a user name; the client is its address. Ten failures lock that pair for fifteen
minutes, the right password included; other addresses and other logins stay open. Behind a
proxy the address comes from ``DJANGO_CLIENT_IP_HEADER`` and from nowhere else.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests import clock
from tests.builders import PASSWORD, make_admin, make_user

pytestmark = pytest.mark.django_db

OFFICE = "192.0.2.10"
ELSEWHERE = "198.51.100.7"
PROXY = "10.0.0.2"
LIMIT = 10


def log_in(username: str, password: str = PASSWORD, address: str = OFFICE, **meta: str):
    """One login form submission from a new browser at ``address``."""
    client = Client()
    data = {"username": username, "password": password}
    response = client.post(reverse("login"), data, REMOTE_ADDR=address, **meta)
    response.logged_in = "_auth_user_id" in client.session
    return response


def fail(username: str, times: int, address: str = OFFICE, **meta: str) -> list[int]:
    return [log_in(username, "wrong", address, **meta).status_code for _ in range(times)]


def assert_locked(response) -> None:
    assert response.status_code == 429
    assert not response.logged_in
    text = response.content.decode()
    assert "this login is locked from your address for 15 minutes" in text
    assert "ask your PSA administrator to lift the lock" in text


class MovedClock:
    """The "now" django-axes times each attempt with, moved forward by the test."""

    def __init__(self) -> None:
        self.now = clock.now()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def axes_clock(monkeypatch) -> MovedClock:
    moved = MovedClock()
    # django-axes reads the clock in one place, when it first sees a request.
    monkeypatch.setattr("axes.handlers.proxy.now", moved)
    return moved


@pytest.fixture
def alice():
    return make_user("alice")


def test_ten_wrong_passwords_lock_the_login_and_the_right_one_is_then_refused(alice):
    assert fail("alice", LIMIT) == [200] * (LIMIT - 1) + [429]

    assert_locked(log_in("alice"))


def test_nine_wrong_passwords_then_the_right_one_log_in_and_start_the_count_again(alice):
    assert fail("alice", LIMIT - 1) == [200] * (LIMIT - 1)
    response = log_in("alice")
    assert response.status_code == 302 and response.logged_in

    assert fail("alice", LIMIT - 1) == [200] * (LIMIT - 1)


def test_a_locked_login_stays_open_from_another_address(alice):
    fail("alice", LIMIT)

    response = log_in("alice", address=ELSEWHERE)

    assert response.status_code == 302 and response.logged_in


def test_other_logins_from_the_locked_address_stay_open(alice):
    make_user("bob")
    fail("alice", LIMIT)

    assert log_in("bob").logged_in


def test_a_new_user_agent_with_every_guess_buys_no_extra_attempts(alice):
    statuses = [
        log_in("alice", "wrong", HTTP_USER_AGENT=f"guesser/{n}").status_code for n in range(LIMIT)
    ]

    assert statuses[-1] == 429
    assert_locked(log_in("alice", HTTP_USER_AGENT="a fresh browser"))


def test_the_lock_holds_for_fifteen_minutes(alice, axes_clock):
    fail("alice", LIMIT)

    axes_clock.advance(minutes=14, seconds=59)

    assert_locked(log_in("alice"))


def test_the_lock_lifts_after_fifteen_minutes(alice, axes_clock):
    fail("alice", LIMIT)

    axes_clock.advance(minutes=15, seconds=1)

    assert log_in("alice").logged_in


def test_the_admin_sees_the_lockout_in_the_django_admin_and_lifts_it(alice):
    fail("alice", LIMIT)
    admin = Client()
    admin.force_login(make_admin().user)
    attempts = reverse("admin:axes_accessattempt_changelist")

    assert attempts in admin.get(reverse("admin:index")).content.decode()
    listing = admin.get(attempts).content.decode()
    assert "alice" in listing and OFFICE in listing and "Locked Out" in listing

    attempt = AccessAttempt.objects.get(username="alice")
    lifted = admin.post(
        attempts, {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    )
    assert lifted.status_code == 302
    assert log_in("alice").logged_in


def test_a_technician_cannot_see_the_lockouts(alice):
    technician = Client()
    technician.force_login(make_user("tech"))

    response = technician.get(reverse("admin:axes_accessattempt_changelist"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_axes_reset_lifts_every_lock(alice):
    fail("alice", LIMIT)

    call_command("axes_reset", verbosity=0)

    assert log_in("alice").logged_in


def test_the_guessed_password_is_neither_stored_nor_logged(alice, caplog):
    with caplog.at_level(logging.DEBUG):
        log_in("alice", "Guess-0f-the-Day")

    assert "Guess-0f-the-Day" not in caplog.text
    assert "Guess-0f-the-Day" not in AccessAttempt.objects.get(username="alice").post_data


# --- the client's address ------------------------------------------------------------------


def test_without_a_client_ip_header_a_forged_forwarded_address_is_ignored(alice, settings):
    settings.CLIENT_IP_HEADER = ""
    statuses = [
        log_in("alice", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(LIMIT)
    ]

    assert statuses[-1] == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {OFFICE}
    assert_locked(log_in("alice", HTTP_X_FORWARDED_FOR=ELSEWHERE))


def test_with_the_client_ip_header_set_the_forwarded_address_is_what_counts(alice, settings):
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"

    assert fail("alice", LIMIT, address=PROXY, HTTP_X_FORWARDED_FOR=OFFICE)[-1] == 429

    assert AccessAttempt.objects.get().ip_address == OFFICE
    assert_locked(log_in("alice", address=PROXY, HTTP_X_FORWARDED_FOR=OFFICE))
    assert log_in("alice", address=PROXY, HTTP_X_FORWARDED_FOR=ELSEWHERE).logged_in


def test_behind_the_proxy_only_the_address_the_proxy_appended_is_believed(alice, settings):
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    statuses = [
        log_in(
            "alice", "wrong", address=PROXY, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}, {OFFICE}"
        ).status_code
        for n in range(LIMIT)
    ]

    assert statuses[-1] == 429
    assert AccessAttempt.objects.get().ip_address == OFFICE


@pytest.mark.parametrize("forwarded", ["", "unknown", "192.0.2.10, not-an-address"])
def test_a_missing_or_garbled_forwarded_address_counts_as_the_proxy(alice, settings, forwarded):
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"

    log_in("alice", "wrong", address=PROXY, HTTP_X_FORWARDED_FOR=forwarded)

    assert AccessAttempt.objects.get().ip_address == PROXY
