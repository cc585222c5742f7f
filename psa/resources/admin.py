from django.contrib import admin

from psa.audit.admin_writes import ActionsAdmin
from psa.resources import actions
from psa.resources.models import Organisation, Resource


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "default_time_zone")


@admin.register(Resource)
class ResourceAdmin(ActionsAdmin):
    create_action = actions.do_create_resource
    update_action = actions.do_update_resource
    delete_action = actions.do_delete_resource
    list_display = ("full_name", "email", "user", "time_zone", "active")
    list_filter = ("active", "time_zone")
    search_fields = ("first_name", "last_name", "email", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
