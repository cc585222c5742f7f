"""A redirect answered to an htmx request becomes a page load (psa/htmx_redirects.py): the
live sync progress polled after the session expired loads the login page as a page instead of
swapping it into the status block."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

PROGRESS = "/profile/exchange/progress/"


def test_an_expired_session_polling_with_htmx_gets_a_client_redirect_to_the_login_page(client):
    response = client.get(PROGRESS, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")
    assert b"<form" not in response.content  # no login page to swap into the block


def test_the_same_request_without_htmx_is_an_ordinary_redirect(client):
    response = client.get(PROGRESS)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert "HX-Redirect" not in response


def test_an_htmx_request_that_is_answered_directly_is_untouched(client, django_user_model):
    user = django_user_model.objects.create_user("someone", password="x" * 20)
    client.force_login(user)
    response = client.post("/i18n/language/", {"language": "de"}, HTTP_HX_REQUEST="true")
    # The language switch redirects back: with htmx that is a page load of the same target.
    assert response.status_code == 200
    assert "HX-Redirect" in response
    response = client.get("/profile/", HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 404)
    assert "HX-Redirect" not in response
