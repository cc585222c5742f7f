"""``{{ value|datetime_seconds }}``: a date and time to the second in the active language's
short format, for the sync log (a run that took 12 s needs its start to the second).

Django's ``SHORT_DATETIME_FORMAT`` stops at the minute, and ``get_format`` knows only Django's
own format names, so the language's ``SHORT_DATETIME_SECONDS_FORMAT`` is read here from the
same format modules (``psa/formats/<locale>/formats.py``, then Django's).
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import formats
from django.utils.translation import get_language

register = template.Library()

SECONDS_FORMAT = "SHORT_DATETIME_SECONDS_FORMAT"
#: For a language without the format (none of ours): ISO order, unambiguous everywhere.
FALLBACK_FORMAT = "Y-m-d H:i:s"


def seconds_format(lang: str | None = None) -> str:
    """The short date-and-time format with seconds of ``lang`` (default: the active one)."""
    for module in formats.get_format_modules(lang or get_language()):
        value = getattr(module, SECONDS_FORMAT, None)
        if value:
            return str(value)
    return FALLBACK_FORMAT


@register.filter(expects_localtime=True)
def datetime_seconds(value: dt.datetime | None) -> str:
    """The value in the template's time zone (``{% timezone %}``) and the active language's
    short date and time with seconds; "" for no value."""
    if value is None or value == "":
        return ""
    return formats.date_format(value, seconds_format())
