"""Every page in every language, in a real browser (SPEC §1 "Languages", docs/i18n.md).

An administrator whose stored language is English, German, Japanese or Simplified Chinese opens
the four MS Exchange tabs, their profile and its MS Exchange tab, their agenda and the General
tab after a failed save. Each page must say ``<html lang>`` in the user's language, show a few
key words in it and fit a 1280 px window without a horizontal scroll bar (long German compounds,
CJK text without spaces). The words come from the compiled catalogues, not from this file; in
de/ja/zh-hans each must differ from the English, so a missing translation fails here too.

With ``UPDATE_SCREENSHOTS=1`` the General tab in de, ja and zh-hans refreshes
docs/screenshots/general-<language>.png (see ``screenshot``); Japanese and Chinese need Debian's
fonts-noto-cjk (``make fonts-deps``).
"""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from exchange_ext.models import ExchangeConfig
from psa.resources.models import Resource
from tests import clock
from tests.browser.test_exchange_config_browser import demo_config, log_in, screenshot
from tests.builders import make_appointment
from tests.exchange_ext.pages import enable, make_exchange_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280

# (path, msgids that the page shows). The words are looked up in the catalogues at test time.
PAGES = {
    "general": ("/extensions/exchange/general/", ["General", "Server details", "Notifications"]),
    "synchronization": (
        "/extensions/exchange/synchronization/",
        ["Synchronization", "Time window", "Import from Exchange to the PSA"],
    ),
    "resources": ("/extensions/exchange/resources/", ["Resources", "Last sync attempt"]),
    "status": ("/extensions/exchange/status/", ["Latest runs", "Enabled resources"]),
    "profile": ("/profile/", ["My profile", "Time zone"]),
    "profile-exchange": ("/profile/exchange/", ["My profile", "Sync status", "What syncs"]),
    "agenda": ("/calendar/", ["Today", "New appointment", "Calendar"]),
}
# The General tab after a save with a required field left empty (Django's own message too).
ERROR_WORDS = ["Please correct the fields marked below.", "This field is required."]


def shown(language: str, msgids: list[str]) -> list[str]:
    """``msgids`` as the catalogues say them in ``language``; outside English each must be
    translated (differ from the English) or the page would silently show English."""
    with translation.override(language):
        words = [translation.gettext(msgid) for msgid in msgids]
    if language != "en":
        untranslated = [m for m, w in zip(msgids, words, strict=True) if m == w]
        assert not untranslated, f"not translated into {language}: {untranslated}"
    return words


def page_text(page) -> str:
    return re.sub(r"\s+", " ", page.evaluate("() => document.body.textContent"))


def assert_in_language(page, language: str, msgids: list[str], where: str) -> None:
    assert page.get_attribute("html", "lang") == language, where
    text = page_text(page)
    missing = [word for word in shown(language, msgids) if word not in text]
    assert not missing, f"{where} in {language} does not show {missing}"
    scroll, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client, f"{where} in {language} scrolls sideways: {scroll} > {client} px"


def administrator(language: str) -> Resource:
    """An MS Exchange administrator with a synced mailbox and a visit on today's agenda."""
    admin = make_exchange_admin("admin")
    Resource.objects.filter(pk=admin.pk).update(language=language)
    demo_config()
    attempt = clock.now()
    enable(admin, mailbox="admin@northwind.example", status="ok",
           last_attempt_at=attempt, last_success_at=attempt)  # fmt: skip
    make_appointment(admin, start=clock.day(0, "15:00", tz=admin.time_zone), title="Site visit")
    return admin


@pytest.mark.parametrize("language", ["en", "de", "ja", "zh-hans"])
def test_every_page_speaks_the_users_language(page, language):
    administrator(language)
    log_in(page, "admin")
    page.set_viewport_size({"width": WIDTH, "height": 900})
    for name, (path, msgids) in PAGES.items():
        page.goto(path)
        assert_in_language(page, language, msgids, name)
        if name == "general" and language != "en":
            screenshot(page, f"general-{language}.png")

    page.goto(PAGES["general"][0])
    page.fill("#id_profile_name", "")
    page.click("form.xe-form button[type=submit]")
    page.wait_for_selector(".field.has-error #id_profile_name")
    assert_in_language(page, language, ERROR_WORDS, "general (failed save)")
    assert ExchangeConfig.load().profile_name == "Northwind Traders"


def test_the_header_switcher_reloads_the_page_in_the_chosen_language(page):
    admin = administrator("en")
    log_in(page, "admin")
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(PAGES["general"][0])
    assert page.get_attribute("html", "lang") == "en"
    page.select_option("#lang-switch-select", "de")  # submits on change
    page.wait_for_selector("html[lang=de]")
    assert page.url.endswith(PAGES["general"][0])
    assert_in_language(page, "de", PAGES["general"][1], "general after switching")
    admin.refresh_from_db()
    assert admin.language == "de"
    page.select_option("#lang-switch-select", "ja")
    page.wait_for_selector("html[lang=ja]")
    assert_in_language(page, "ja", PAGES["general"][1], "general after switching again")
