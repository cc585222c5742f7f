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
