from django.apps import AppConfig


class ResourcesConfig(AppConfig):
    name = "psa.resources"
    label = "resources"
    verbose_name = "Resources"
