from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "psa.scheduling"
    label = "scheduling"
    verbose_name = "Scheduling"
