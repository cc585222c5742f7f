from django.contrib import admin

from psa.resources.models import Organisation, Resource


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "default_time_zone")


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    list_display = ("full_name", "email", "user", "time_zone", "active")
    list_filter = ("active", "time_zone")
    search_fields = ("first_name", "last_name", "email", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
