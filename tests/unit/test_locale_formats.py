"""Dates, times and numbers follow the language (SPEC §1; docs/i18n.md "Dates, times and numbers").

International English (``en``, psa/formats/en) uses the 24-hour clock and day-month dates; US
English (``en-us``) the 12-hour clock and month-first dates; German, Japanese and Chinese use
Django's own (24-hour) formats. Templates name a locale format instead of a literal pattern.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import formats, translation

ROOT = Path(__file__).resolve().parents[2]
MOMENT = dt.datetime(2026, 12, 6, 14, 5)  # pinned: a Sunday afternoon, day 6 ≠ month 12

EXPECTED = {
    "en": {
        "DATETIME_FORMAT": "6 Dec 2026, 14:05",
        "TIME_FORMAT": "14:05",
        "SHORT_DATETIME_FORMAT": "06/12/2026 14:05",
        "SHORT_DATE_FORMAT": "06/12/2026",
    },
    "en-us": {
        "DATETIME_FORMAT": "Dec. 6, 2026, 2:05 p.m.",
        "TIME_FORMAT": "2:05 p.m.",
        "SHORT_DATETIME_FORMAT": "12/06/2026 2:05 p.m.",
        "SHORT_DATE_FORMAT": "12/06/2026",
    },
    "de": {
        "DATETIME_FORMAT": "6. Dezember 2026 14:05",
        "TIME_FORMAT": "14:05",
        "SHORT_DATETIME_FORMAT": "06.12.2026 14:05",
        "SHORT_DATE_FORMAT": "06.12.2026",
    },
    "ja": {
        "DATETIME_FORMAT": "2026年12月6日14:05",
        "TIME_FORMAT": "14:05",
        "SHORT_DATETIME_FORMAT": "2026/12/06 14:05",
        "SHORT_DATE_FORMAT": "2026/12/06",
    },
    "zh-hans": {
        "DATETIME_FORMAT": "2026年12月6日 14:05",
        "TIME_FORMAT": "14:05",
        "SHORT_DATETIME_FORMAT": "2026年12月6日 14:05",
        "SHORT_DATE_FORMAT": "2026年12月6日",
    },
}

NUMBERS = {
    "en": "1,234.5",
    "en-us": "1,234.5",
    "de": "1.234,5",
    "ja": "1,234.5",
    "zh-hans": "1234.5",
}


@pytest.mark.parametrize(
    ("language", "name"), [(lang, name) for lang, names in EXPECTED.items() for name in names]
)
def test_date_and_time_formats_follow_the_language(language, name):
    with translation.override(language):
        assert formats.date_format(MOMENT, name) == EXPECTED[language][name]


@pytest.mark.parametrize("language", ["en", "de", "ja", "zh-hans"])
def test_every_language_but_us_english_uses_the_24_hour_clock(language):
    with translation.override(language):
        assert "14" in formats.date_format(MOMENT, "TIME_FORMAT")
        assert "14" in formats.date_format(MOMENT, "SHORT_DATETIME_FORMAT")


def test_us_english_uses_the_12_hour_clock_and_month_first():
    with translation.override("en-us"):
        assert formats.date_format(MOMENT, "SHORT_DATE_FORMAT").startswith("12/06")
        assert "p.m." in formats.date_format(MOMENT, "TIME_FORMAT")


@pytest.mark.parametrize("language", sorted(NUMBERS))
def test_numbers_follow_the_language(language):
    with translation.override(language):
        shown = formats.number_format(1234.5, 1, use_l10n=True, force_grouping=True)
    assert shown == NUMBERS[language]


@pytest.mark.parametrize("language", ["en", "de", "ja", "zh-hans", "en-us"])
def test_each_language_reads_back_the_times_it_shows(language):
    """A time shown in TIME_FORMAT (24-hour languages) parses with the language's inputs."""
    with translation.override(language):
        inputs = formats.get_format("TIME_INPUT_FORMATS")
        assert any(_parses("14:05", pattern) for pattern in inputs) or language == "en-us"


def _parses(text: str, pattern: str) -> bool:
    try:
        dt.datetime.strptime(text, pattern)
    except ValueError:
        return False
    return True


# --- templates name locale formats ----------------------------------------------------------

# A |date/|time argument that is a literal pattern with a time or a day-month order in it.
_LITERAL_FORMAT = re.compile(r"""\|\s*(?:date|time)\s*:\s*(["'])(?P<format>[^"']*)\1""")
_LOCALE_NAME = re.compile(r"^[A-Z_]+_FORMAT$")
# Machine formats (URL parameters, <input> values, datetime= attributes) stay ISO.
_MACHINE = re.compile(r"^(?:Y-m-d|Y-m-d\\TH:i(?::s)?|c|U)$")
_TIME_OR_NUMERIC_DATE = re.compile(r"[aAfgGhHiPsu]|[dmnjy]\W+[dmnjyY]|[Y]\W+[mn]")


def hard_coded_formats() -> list[str]:
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in _LITERAL_FORMAT.finditer(line):
                pattern = match.group("format")
                if (
                    not _LOCALE_NAME.match(pattern)
                    and not _MACHINE.match(pattern)
                    and _TIME_OR_NUMERIC_DATE.search(pattern)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {pattern!r}")
    return found


def test_templates_show_times_with_locale_formats():
    found = hard_coded_formats()
    assert not found, (
        "Templates show times or numeric dates with a literal pattern, which ignores the "
        'language (12-hour US English, day-month elsewhere): use |date:"SHORT_DATETIME_FORMAT", '
        '|date:"DATETIME_FORMAT", |time:"TIME_FORMAT" or no argument (docs/i18n.md):\n'
        + "\n".join(f"  {f}" for f in found)
    )
