"""US English: Django's own English formats (month first, 12-hour clock, Sunday first).

Without this module the international ``en`` formats beside it would apply to ``en-us`` too:
Django falls back from ``en_US`` to ``en`` within one format path before trying its own.
"""

from django.conf.locale.en.formats import *  # noqa: F403

# Not a Django setting: read by exchange_ext.templatetags.exchange_runs (the sync log).
SHORT_DATETIME_SECONDS_FORMAT = "m/d/Y g:i:s A"  # 10/25/2026 2:30:05 PM
# Not a Django setting: read by psa.scheduling.forms (the typed date of the calendar forms, a
# strftime pattern of digits only).
DATE_FIELD_FORMAT = "%m/%d/%Y"  # 10/25/2026
