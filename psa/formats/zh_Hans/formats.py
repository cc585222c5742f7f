"""Simplified Chinese: Django's own formats, plus the short date and time with seconds.

Only what Django lacks is here: every other format falls through to Django's locale data
(``django.utils.formats.get_format`` takes the first module that defines a name).
"""

# Not a Django setting: read by exchange_ext.templatetags.exchange_runs (the sync log); it is
# Django's SHORT_DATETIME_FORMAT for the language with the seconds added.
SHORT_DATETIME_SECONDS_FORMAT = "Y年n月j日 H:i:s"  # 2026年10月25日 14:30:05
# Not a Django setting: read by psa.scheduling.forms (the typed date of the calendar forms, a
# strftime pattern of digits only).
DATE_FIELD_FORMAT = "%Y/%m/%d"  # 2026/10/25
