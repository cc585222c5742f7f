"""German: Django's own formats, plus the short date and time with seconds.

Only what Django lacks is here: every other format falls through to Django's locale data
(``django.utils.formats.get_format`` takes the first module that defines a name).
"""

# Not a Django setting: read by exchange_ext.templatetags.exchange_runs (the sync log); it is
# Django's SHORT_DATETIME_FORMAT for the language with the seconds added.
SHORT_DATETIME_SECONDS_FORMAT = "d.m.Y H:i:s"  # 25.10.2026 14:30:05
# Not a Django setting: read by psa.scheduling.forms (the typed date of the calendar forms, a
# strftime pattern of digits only).
DATE_FIELD_FORMAT = "%d.%m.%Y"  # 25.10.2026
