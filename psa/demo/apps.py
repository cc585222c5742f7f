from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data (``load_demo``) and the one-command demo runner (``run_demo``)."""

    name = "psa.demo"
    label = "demo"
    verbose_name = "Demo data"
