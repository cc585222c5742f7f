"""International English: day before month, 24-hour clock, Monday first."""

DATE_FORMAT = "j M Y"  # 25 Oct 2026
TIME_FORMAT = "H:i"  # 14:30
DATETIME_FORMAT = "j M Y, H:i"  # 25 Oct 2026, 14:30
YEAR_MONTH_FORMAT = "F Y"  # October 2026
MONTH_DAY_FORMAT = "j F"  # 25 October
SHORT_DATE_FORMAT = "d/m/Y"  # 25/10/2026
SHORT_DATETIME_FORMAT = "d/m/Y H:i"  # 25/10/2026 14:30
# Not a Django setting: read by exchange_ext.templatetags.exchange_runs (the sync log).
SHORT_DATETIME_SECONDS_FORMAT = "d/m/Y H:i:s"  # 25/10/2026 14:30:05
FIRST_DAY_OF_WEEK = 1  # Monday

# ISO first: the product's own date and time inputs post ISO values.
DATE_INPUT_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y"]
TIME_INPUT_FORMATS = ["%H:%M", "%H:%M:%S", "%H:%M:%S.%f"]
DATETIME_INPUT_FORMATS = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%y %H:%M",
]
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
# Not a Django setting: read by psa.scheduling.forms (the typed date of the calendar forms, a
# strftime pattern of digits only).
DATE_FIELD_FORMAT = "%d/%m/%Y"  # 25/10/2026
