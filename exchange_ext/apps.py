from django.apps import AppConfig


class ExchangeExtConfig(AppConfig):
    name = "exchange_ext"
    label = "exchange_ext"
    verbose_name = "MS Exchange extension"
