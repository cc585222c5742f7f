"""The profile's General tab: a resource's own name, email, time zone and language."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from psa.resources.timezones import time_zone_choices


def language_choices() -> list[tuple[str, str]]:
    """The browser's language (blank), then each language by its own name (``LANGUAGES``)."""
    return [("", str(_("Browser's language"))), *settings.LANGUAGES]


class ProfileForm(forms.Form):
    first_name = forms.CharField(max_length=100, label=_("First name"))
    last_name = forms.CharField(max_length=100, label=_("Last name"))
    email = forms.EmailField(label=_("Email"))
    time_zone = forms.ChoiceField(
        choices=time_zone_choices,  # the stored value is added in __init__ if it is an alias
        label=_("Time zone"),
        help_text=_("Your calendar is shown in this zone, and items sent to your mailbox use it."),
    )
    language = forms.ChoiceField(
        choices=language_choices,
        required=False,
        label=_("Language"),
        help_text=_(
            "Pages, your emails and the text the PSA writes into your Exchange items use this "
            "language. Left on the browser's language, emails and Exchange items use the "
            "installation's default."
        ),
    )

    FIELDS = ("first_name", "last_name", "email", "time_zone", "language")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A zone stored under an alias (``US/Eastern``) is not offered, but stays selected and
        # valid so that saving the name or the language does not change the user's zone.
        stored = self.initial.get("time_zone")
        self.fields["time_zone"].choices = time_zone_choices(keep=stored)
