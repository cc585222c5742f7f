from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ExchangeExtConfig(AppConfig):
    name = "exchange_ext"
    label = "exchange_ext"
    verbose_name = _("MS Exchange extension")

    def ready(self) -> None:
        from exchange_ext import checks, crypto  # noqa: F401  (checks registers itself)
        from exchange_ext.jobs.prompt_sync import on_psa_item_changed
        from psa.audit.signals import psa_item_changed

        if not settings.DEBUG:
            # Production without EXCHANGE_SECRET_KEYS must not start (secrets would be unreadable).
            crypto.check_keys_configured()
        self._register_pages()
        self._register_item_panel()
        self._register_monitoring()
        # After every migrate (fresh install, deploy, `make run`): the schedule exists, once.
        post_migrate.connect(_ensure_schedules, sender=self, dispatch_uid="exchange_schedules")
        psa_item_changed.connect(on_psa_item_changed, dispatch_uid="exchange_prompt_sync")

    def _register_pages(self) -> None:
        """List the admin tabs under Extensions & Integrations and add the profile tab."""
        from exchange_ext.web.permissions import MANAGE_PERMISSION, has_resource
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
                group=_("Microsoft Extensions"),
                url_name="exchange_ext:general",
                permission=MANAGE_PERMISSION,
                description=_("Sync calendars, to-dos and contacts with Microsoft Exchange."),
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

    def _register_item_panel(self) -> None:
        """Show each PSA item's sync state and history on its page (issue 15, item 5)."""
        from exchange_ext.web.history import item_sync_panel
        from psa.extensions.registry import ItemPanel, register_item_panel

        register_item_panel(ItemPanel(slug="exchange", render=item_sync_panel, order=50))

    def _register_monitoring(self) -> None:
        """Add the sync's metrics to /metrics and its worker heartbeat to /healthz."""
        from exchange_ext.web.monitoring import ExchangeCollector, worker_heartbeat
        from psa.monitoring.registry import register_collector, register_worker_heartbeat

        register_collector("exchange", ExchangeCollector())
        register_worker_heartbeat("exchange", worker_heartbeat)


def _ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    from exchange_ext.jobs.schedules import ensure_schedules

    ensure_schedules()
