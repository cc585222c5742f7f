"""The profile's General tab: a resource's own name, email and time zone."""

from __future__ import annotations

from django import forms

from psa.resources.timezones import time_zone_choices


class ProfileForm(forms.Form):
    first_name = forms.CharField(max_length=100, label="First name")
    last_name = forms.CharField(max_length=100, label="Last name")
    email = forms.EmailField()
    time_zone = forms.ChoiceField(
        choices=time_zone_choices,
        label="Time zone",
        help_text="Your calendar is shown in this zone, and items sent to your mailbox use it.",
    )

    FIELDS = ("first_name", "last_name", "email", "time_zone")
