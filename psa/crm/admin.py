from django.contrib import admin

from psa.crm.models import Account, Contact, Opportunity


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ("first_name", "last_name", "title", "email", "business_phone", "active")
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "city", "phone", "account_manager", "active")
    list_filter = ("active", "account_manager")
    search_fields = ("name", "city")
    list_select_related = ("account_manager",)
    inlines = [ContactInline]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("full_name", "account", "title", "email", "business_phone", "active")
    list_filter = ("active",)
    search_fields = ("first_name", "last_name", "email", "account__name")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):
    list_display = ("title", "account", "owner", "stage", "closed")
    list_filter = ("stage", "closed", "owner")
    search_fields = ("title", "account__name")
    list_select_related = ("account", "owner")
    autocomplete_fields = ("account", "contact")
