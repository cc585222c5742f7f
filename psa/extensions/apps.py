from django.apps import AppConfig


class ExtensionsConfig(AppConfig):
    name = "psa.extensions"
    label = "extensions"
    verbose_name = "Extensions & Integrations"
