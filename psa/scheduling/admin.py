from django.contrib import admin

from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("number", "title", "kind", "status", "account")
    list_filter = ("kind", "status")
    search_fields = ("number", "title")


@admin.register(Appointment)
class AppointmentAdmin(admin.ModelAdmin):
    list_display = ("title", "resource", "start", "end", "all_day", "show_as", "origin")
    list_filter = ("origin", "show_as", "all_day", "private", "resource")
    search_fields = ("title", "description")
    date_hierarchy = "start"
    list_select_related = ("resource",)


@admin.register(ServiceCall)
class ServiceCallAdmin(admin.ModelAdmin):
    list_display = ("__str__", "account", "start", "end", "status")
    list_filter = ("status",)
    search_fields = ("description", "account__name")
    date_hierarchy = "start"
    filter_horizontal = ("resources", "tickets")
    list_select_related = ("account",)


@admin.register(Todo)
class TodoAdmin(admin.ModelAdmin):
    list_display = ("__str__", "resource", "account", "start", "end", "completed_at")
    list_filter = ("action_type", "resource")
    search_fields = ("description", "account__name")
    date_hierarchy = "start"
    list_select_related = ("resource", "account")
