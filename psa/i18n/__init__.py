"""Languages of the PSA (docs/i18n.md): who reads which language, and where it is chosen.

- Pages: a signed-in user's stored choice (``Resource.language``), else the browser's
  (``LocaleMiddleware``: the language cookie of the header's switcher, then Accept-Language),
  else ``PSA_LANGUAGE``.
- Emails and the text written into a resource's Exchange items: the person's stored choice,
  else ``PSA_LANGUAGE`` (a mail or an Exchange item has no browser to ask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from psa.resources.models import Resource


def language_codes() -> list[str]:
    """The codes of the languages the PSA speaks, in ``settings.LANGUAGES`` order."""
    return [code for code, _name in settings.LANGUAGES]


def chosen_language(resource: Resource | None) -> str:
    """The language a person reads when no browser is asking: their stored choice, else the
    installation default. ``None`` (an address that is no PSA user) gets the default."""
    if resource is not None and resource.language in language_codes():
        return resource.language
    return str(settings.PSA_LANGUAGE)


def user_language(user: object) -> str:
    """The stored language of a signed-in user's resource, or ``""`` when they never chose one
    (or have no resource): then the browser decides."""
    resource = getattr(user, "resource", None) if user is not None else None
    language = getattr(resource, "language", "") if resource is not None else ""
    return language if language in language_codes() else ""
