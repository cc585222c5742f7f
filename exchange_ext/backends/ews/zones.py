"""Windows ⇄ IANA time zone names, from exchangelib's tables (CLDR's windowsZones).

Exchange names zones by Windows id over EWS and over Graph alike. The Graph backend reads
these tables through here, so that exchangelib is imported under ``backends/ews/`` only
(pyproject.toml's import contracts) and there is one copy of the tables.
"""

from __future__ import annotations

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP


def windows_zone_id(iana: str) -> str | None:
    """The Windows id of the IANA zone ``iana``, or ``None`` when the tables have none."""
    windows = IANA_TO_MS_TIMEZONE_MAP.get(iana)
    # exchangelib's map holds (Windows id, territory) pairs.
    return str(windows[0] if isinstance(windows, tuple) else windows) if windows else None


def iana_zone_name(windows: str) -> str | None:
    """The IANA name of the Windows zone id ``windows``, or ``None`` when it is not one."""
    return MS_TIMEZONE_TO_IANA_MAP.get(windows)
