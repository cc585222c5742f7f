from django.apps import AppConfig
from django.conf import settings


class ExchangeExtConfig(AppConfig):
    name = "exchange_ext"
    label = "exchange_ext"
    verbose_name = "MS Exchange extension"

    def ready(self) -> None:
        from exchange_ext import crypto

        if not settings.DEBUG:
            # Production without EXCHANGE_SECRET_KEYS must not start (secrets would be unreadable).
            crypto.check_keys_configured()
        self._register_pages()

    def _register_pages(self) -> None:
        """List the admin tabs under Extensions & Integrations and add the profile tab."""
        from exchange_ext.permissions import MANAGE_PERMISSION, has_resource
        from psa.extensions.registry import (
            ExtensionPage,
            ProfileTab,
            register_extension_page,
            register_profile_tab,
        )

        register_extension_page(
            ExtensionPage(
                slug="exchange",
                label="MS Exchange",
                group="Microsoft Extensions",
                url_name="exchange_ext:general",
                permission=MANAGE_PERMISSION,
                description="Sync calendars, to-dos and contacts with Microsoft Exchange.",
            )
        )
        register_profile_tab(
            ProfileTab(
                slug="exchange",
                label="MS Exchange",
                url_name="exchange_ext_profile:profile_exchange",
                order=50,
                is_visible=has_resource,
            )
        )
