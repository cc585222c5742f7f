"""Date, time and number formats where ours differ from Django's (docs/i18n.md, "Formats").

Django looks here first (``FORMAT_MODULE_PATH``), then in its own locale data: ``en`` is
international English (24-hour clock, day before month, as SPEC §1 asks), ``en_US`` keeps
Django's US formats for users who pick "English (US)". German, Japanese and Chinese use
Django's own formats, which are already 24-hour; their modules here add only
``SHORT_DATETIME_SECONDS_FORMAT`` (not a Django setting: the short date and time with seconds
that the sync log shows, read by ``exchange_ext.templatetags.exchange_runs``), which every
language defines.
"""
