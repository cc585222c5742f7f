"""US English: Django's own English formats (month first, 12-hour clock, Sunday first).

Without this module the international ``en`` formats beside it would apply to ``en-us`` too:
Django falls back from ``en_US`` to ``en`` within one format path before trying its own.
"""

from django.conf.locale.en.formats import *  # noqa: F403
