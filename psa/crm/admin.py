from django.contrib import admin

from psa.audit.admin_writes import ActionsAdmin, ActionsInline
from psa.crm import actions
from psa.crm.models import Account, Contact, Opportunity


class ContactInline(ActionsInline, admin.TabularInline):
    model = Contact
    create_action = actions.do_create_contact
    update_action = actions.do_update_contact
    delete_action = actions.do_delete_contact
    fields = ("first_name", "last_name", "title", "email", "business_phone", "active")
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(ActionsAdmin):
    create_action = actions.do_create_account
    update_action = actions.do_update_account
    delete_action = actions.do_delete_account
    list_display = ("name", "city", "phone", "account_manager", "active")
    list_filter = ("active", "account_manager")
    search_fields = ("name", "city")
    list_select_related = ("account_manager",)
    inlines = [ContactInline]


@admin.register(Contact)
class ContactAdmin(ActionsAdmin):
    create_action = actions.do_create_contact
    update_action = actions.do_update_contact
    delete_action = actions.do_delete_contact
    list_display = ("full_name", "account", "title", "email", "business_phone", "active")
    list_filter = ("active",)
    search_fields = ("first_name", "last_name", "email", "account__name")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)


@admin.register(Opportunity)
class OpportunityAdmin(ActionsAdmin):
    create_action = actions.do_create_opportunity
    update_action = actions.do_update_opportunity
    delete_action = actions.do_delete_opportunity
    readonly_fields = ("closed",)  # the actions derive it from the stage
    list_display = ("title", "account", "owner", "stage", "closed")
    list_filter = ("stage", "closed", "owner")
    search_fields = ("title", "account__name")
    list_select_related = ("account", "owner")
    autocomplete_fields = ("account", "contact")
