"""The to-do form: contacts follow the account, required fields are marked (issue 15, item 11)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from psa.scheduling.models import Todo
from tests.builders import at, make_account, make_contact, make_resource, make_todo

pytestmark = pytest.mark.django_db

TODO_CREATE = reverse("todo_create")


def logged_in(client, resource):
    client.force_login(resource.user)
    return client


def contact_options(html: str) -> dict[str, str]:
    """The contact select's options with a value: {value: data-account}."""
    select = re.search(r'<select name="contact".*?</select>', html, re.S)
    assert select is not None
    options = re.findall(r'<option value="(\d+)"([^>]*)>', select.group(0))
    return {value: re.search(r'data-account="(\d+)"', attrs).group(1) for value, attrs in options}


def todo_data(chosen, **overrides) -> dict[str, object]:
    data = {
        "account": chosen.pk,
        "action_type": "email",
        "description": "Mail",
        "start_0": "2026-11-23",
        "start_1": "09:00",
        "end_0": "2026-11-23",
        "end_1": "10:00",
    }
    return data | overrides


@pytest.fixture
def two_accounts():
    """Acme with two contacts, Globex with one."""
    acme, globex = make_account("Acme"), make_account("Globex")
    contacts = {
        "ann": make_contact(acme, first_name="Ann"),
        "bob": make_contact(acme, first_name="Bob"),
        "gil": make_contact(globex, first_name="Gil"),
    }
    return acme, globex, contacts


def test_a_new_todo_without_an_account_offers_every_contact_each_marked_with_its_account(
    client, two_accounts
):
    acme, globex, contacts = two_accounts
    html = logged_in(client, make_resource()).get(TODO_CREATE).content.decode()
    assert contact_options(html) == {
        str(contacts["ann"].pk): str(acme.pk),
        str(contacts["bob"].pk): str(acme.pk),
        str(contacts["gil"].pk): str(globex.pk),
    }
    assert 'data-filters="id_contact"' in html  # the script's hook on the account select


def test_an_account_preset_in_the_url_offers_only_its_contacts(client, two_accounts):
    _acme, globex, contacts = two_accounts
    response = logged_in(client, make_resource()).get(TODO_CREATE, {"account": globex.pk})
    html = response.content.decode()
    assert contact_options(html) == {str(contacts["gil"].pk): str(globex.pk)}
    assert f'<option value="{globex.pk}" selected>Globex</option>' in html


@pytest.mark.parametrize("account", ["abc", "-1", "999999", "9" * 40, "１２", ""])
def test_a_url_account_that_is_not_one_is_ignored(client, two_accounts, account):
    response = logged_in(client, make_resource()).get(TODO_CREATE, {"account": account})
    assert response.status_code == 200
    assert len(contact_options(response.content.decode())) == 3


def test_editing_a_todo_offers_only_its_accounts_contacts(client, two_accounts):
    acme, _globex, contacts = two_accounts
    tech = make_resource()
    todo = make_todo(tech, account=acme, contact=contacts["bob"])
    html = logged_in(client, tech).get(reverse("todo_edit", args=[todo.pk])).content.decode()
    assert set(contact_options(html)) == {str(contacts["ann"].pk), str(contacts["bob"].pk)}
    assert re.search(rf'<option value="{contacts["bob"].pk}"[^>]* selected[ >]', html)


def test_a_form_sent_back_offers_only_the_posted_accounts_contacts(client, two_accounts):
    _acme, globex, contacts = two_accounts
    data = todo_data(globex, description="")  # an error: the form comes back
    response = logged_in(client, make_resource()).post(TODO_CREATE, data)
    assert response.status_code == 400
    assert contact_options(response.content.decode()) == {str(contacts["gil"].pk): str(globex.pk)}


def test_a_contact_of_another_account_posted_anyway_is_refused_and_nothing_is_saved(
    client, two_accounts
):
    acme, _globex, contacts = two_accounts
    data = todo_data(acme, contact=contacts["gil"].pk)
    response = logged_in(client, make_resource()).post(TODO_CREATE, data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors == {"contact": ["The contact must belong to the to-do's account."]}
    assert not Todo.objects.exists()


def test_moving_a_todo_to_another_account_with_the_old_contact_is_refused(client, two_accounts):
    acme, globex, contacts = two_accounts
    tech = make_resource()
    todo = make_todo(tech, account=acme, contact=contacts["ann"])
    data = todo_data(globex, contact=contacts["ann"].pk)
    response = logged_in(client, tech).post(reverse("todo_edit", args=[todo.pk]), data)
    assert response.status_code == 400
    assert "contact" in response.context["form"].errors
    todo.refresh_from_db()
    assert (todo.account_id, todo.contact_id) == (acme.pk, contacts["ann"].pk)


@pytest.mark.parametrize("account", ["", "abc", "9" * 40, "999999"])
def test_a_posted_account_that_is_not_one_is_an_account_error_not_a_crash(
    client, two_accounts, account
):
    _acme, _globex, contacts = two_accounts
    data = todo_data(two_accounts[0], account=account, contact=contacts["ann"].pk)
    response = logged_in(client, make_resource()).post(TODO_CREATE, data)
    assert response.status_code == 400
    assert "account" in response.context["form"].errors
    assert not Todo.objects.exists()


def test_a_contact_of_the_chosen_account_saves(client, two_accounts):
    _acme, globex, contacts = two_accounts
    data = todo_data(globex, contact=contacts["gil"].pk)
    assert logged_in(client, make_resource()).post(TODO_CREATE, data).status_code == 302
    assert Todo.objects.get().contact == contacts["gil"]


# --- required fields -------------------------------------------------------------------------

REQUIRED_MARK = '<span class="req" aria-hidden="true">*</span></label>'


def label_of(html: str, field_id: str) -> str:
    match = re.search(rf'<label for="{field_id}">(.*?)</label>', html, re.S)
    assert match is not None, field_id
    return match.group(0)


def test_the_todo_form_marks_its_required_fields_and_explains_the_mark(client):
    html = logged_in(client, make_resource()).get(TODO_CREATE).content.decode()
    for field_id in ("id_account", "id_action_type", "id_description", "id_start_0", "id_end_0"):
        assert label_of(html, field_id).endswith(REQUIRED_MARK)
    for field_id in ("id_contact", "id_completed"):
        assert "req" not in label_of(html, field_id)
    assert re.search(r'<select name="account"[^>]*\brequired\b', html)
    assert re.search(r'<textarea name="description"[^>]*\brequired\b', html)
    assert not re.search(r'<select name="contact"[^>]*\brequired\b', html)
    assert '<p class="required-legend"><span class="req">*</span> required</p>' in html


def test_the_marks_and_legend_follow_the_language(client):
    tech = make_resource(language="de")
    html = logged_in(client, tech).get(TODO_CREATE).content.decode()
    assert label_of(html, "id_account").endswith(REQUIRED_MARK)
    assert '<p class="required-legend"><span class="req">*</span> ' in html


def test_the_profile_form_marks_its_required_fields_too(client):
    html = logged_in(client, make_resource()).get(reverse("profile")).content.decode()
    assert label_of(html, "id_first_name").endswith(REQUIRED_MARK)
    assert label_of(html, "id_time_zone").endswith(REQUIRED_MARK)
    assert "req" not in label_of(html, "id_language")
    assert 'class="required-legend"' in html


# --- dates and times in the product's formats (SPEC §1) ------------------------------------


@pytest.mark.parametrize(
    ("language", "day", "time"),
    [
        ("en", "30/03/2026", "15:00"),
        ("en-us", "03/30/2026", "3:00 PM"),
        ("de", "30.03.2026", "15:00"),
        ("ja", "2026/03/30", "15:00"),
        ("zh-hans", "2026/03/30", "15:00"),
    ],
)
def test_a_todo_is_shown_and_saved_in_the_languages_date_and_time(
    client, two_accounts, language, day, time
):
    """Berlin, CEST on 30 March 2026: 15:00 local is 13:00 UTC."""
    acme = two_accounts[0]
    tech = make_resource(time_zone="Europe/Berlin", language=language)
    client = logged_in(client, tech)
    data = todo_data(acme, start_0=day, start_1=time, end_0=day, end_1=time)
    assert client.post(TODO_CREATE, data).status_code == 302
    todo = Todo.objects.get()
    assert todo.start == todo.end == at("2026-03-30 13:00")
    html = client.get(reverse("todo_edit", args=[todo.pk])).content.decode()
    assert f'type="text" name="start_0" value="{day}"' in html
    assert f'type="text" name="end_1" value="{time}"' in html
    assert 'type="date"' not in html


@pytest.mark.parametrize(
    ("language", "typed", "expected"),
    [
        ("en", "3/4/2026", "2026-04-03"),  # day first
        ("en-us", "3/4/2026", "2026-03-04"),  # month first
        ("de", "3.4.2026", "2026-04-03"),
        ("ja", "2026/4/3", "2026-04-03"),
        ("de", "2026-04-03", "2026-04-03"),  # ISO, as scripts and the picker send, everywhere
        ("en", "２０２６-０４-０３", "2026-04-03"),  # full-width digits of an input method
    ],
)
def test_typed_dates_are_read_in_the_languages_order(
    client, two_accounts, language, typed, expected
):
    tech = make_resource(time_zone="UTC", language=language)
    data = todo_data(two_accounts[0], start_0=typed, end_0=typed, start_1="09:00", end_1="10:00")
    assert logged_in(client, tech).post(TODO_CREATE, data).status_code == 302
    assert Todo.objects.get().start.date().isoformat() == expected


@pytest.mark.parametrize("typed", ["31/02/2026", "13/13/2026", "30-03", "tomorrow", "2026/30/03"])
def test_a_date_that_is_not_one_is_a_field_error(client, two_accounts, typed):
    tech = make_resource(language="en")
    data = todo_data(two_accounts[0], start_0=typed)
    response = logged_in(client, tech).post(TODO_CREATE, data)
    assert response.status_code == 400
    assert "start" in response.context["form"].errors
    assert f'name="start_0" value="{typed}"' in response.content.decode()  # kept as typed
    assert not Todo.objects.exists()


def test_the_date_input_says_how_to_type_a_date(client):
    html = logged_in(client, make_resource(language="en-us")).get(TODO_CREATE).content.decode()
    assert re.search(r'name="start_0"[^>]*placeholder="MM/DD/YYYY"', html)
    assert re.search(r'name="start_0"[^>]*data-date-format="%m/%d/%Y"', html)
    assert '<label for="id_start_0">' in html  # the label names the date input
