from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "psa.crm"
    label = "crm"
    verbose_name = "CRM"
