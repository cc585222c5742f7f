from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "psa.audit"
    label = "audit"
    verbose_name = "Audit trail"
