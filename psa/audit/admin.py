from django.contrib import admin

from psa.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "action", "model", "object_repr", "origin_kind", "origin_source", "user")
    list_filter = ("action", "origin_kind", "model")
    search_fields = ("object_repr", "object_id")
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request):  # the trail is written by actions only
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):  # the trail is never rewritten
        return False
