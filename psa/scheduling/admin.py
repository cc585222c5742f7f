from django.contrib import admin

from psa.audit.admin_writes import ActionsAdmin
from psa.scheduling import actions
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo


@admin.register(Ticket)
class TicketAdmin(ActionsAdmin):
    create_action = actions.do_create_ticket
    update_action = actions.do_update_ticket
    delete_action = actions.do_delete_ticket
    list_display = ("number", "title", "kind", "status", "account")
    list_filter = ("kind", "status")
    search_fields = ("number", "title")


@admin.register(Appointment)
class AppointmentAdmin(ActionsAdmin):
    create_action = actions.do_create_appointment
    update_action = actions.do_update_appointment
    delete_action = actions.do_delete_appointment
    list_display = ("title", "resource", "start", "end", "all_day", "show_as", "origin")
    list_filter = ("origin", "show_as", "all_day", "private", "resource")
    search_fields = ("title", "description")
    date_hierarchy = "start"
    list_select_related = ("resource",)


@admin.register(ServiceCall)
class ServiceCallAdmin(ActionsAdmin):
    create_action = actions.do_create_service_call
    update_action = actions.do_update_service_call
    delete_action = actions.do_delete_service_call
    list_display = ("__str__", "account", "start", "end", "status")
    list_filter = ("status",)
    search_fields = ("description", "account__name")
    date_hierarchy = "start"
    filter_horizontal = ("resources", "tickets")
    list_select_related = ("account",)


@admin.register(Todo)
class TodoAdmin(ActionsAdmin):
    create_action = actions.do_create_todo
    update_action = actions.do_update_todo
    delete_action = actions.do_delete_todo
    list_display = ("__str__", "resource", "account", "start", "end", "completed_at")
    list_filter = ("action_type", "resource")
    search_fields = ("description", "account__name")
    date_hierarchy = "start"
    list_select_related = ("resource", "account")
