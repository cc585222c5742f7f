from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ResourcesConfig(AppConfig):
    name = "psa.resources"
    label = "resources"
    verbose_name = _("Resources")

    def ready(self) -> None:
        from psa.extensions.registry import ProfileTab, register_profile_tab

        register_profile_tab(
            ProfileTab(slug="general", label=_("General"), url_name="profile", order=0)
        )
