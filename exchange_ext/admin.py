"""Django admin for the extension's rows — an operator's view; secrets are never shown.

The admin tabs under /extensions/exchange/ are the product's UI; this admin is for support.
Secret columns are excluded from every form (their stored values stay untouched on save), and
status fields written by the sync runner are read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import ngettext

from exchange_ext.models import (
    ExchangeConfig,
    FolderSyncState,
    ItemLink,
    MailboxSettings,
    SyncLogEntry,
    SyncRun,
)
from exchange_ext.web import config_changes
from exchange_ext.web.validators import (
    validate_credentials_domain,
    validate_notification_emails,
    validate_server_address,
)

SECRET_FIELDS = ("password", "client_secret", "client_certificate")
STATUS_FIELDS = (
    "status",
    "last_attempt_at",
    "last_success_at",
    "last_error",
    "enabled_at",
    "sync_requested_at",
    "sync_requested_trigger",
    "resync_requested_at",
    "lease_token",
    "lease_holder",
    "lease_expires_at",
    # A removal request is made on the resource's page, which turns the sync off first.
    "removal_kinds",
    "removal_requested_at",
    "removal_queued_at",
)


class ExchangeConfigAdminForm(forms.ModelForm):
    class Meta:
        model = ExchangeConfig
        fields = [
            f.name
            for f in ExchangeConfig._meta.concrete_fields
            if f.editable and not f.primary_key and f.name not in SECRET_FIELDS
        ]

    # The General tab's validators, so this page cannot store what the tab refuses.
    def clean_server_address(self) -> str:
        return validate_server_address(self.cleaned_data["server_address"])

    def clean_notification_emails(self) -> str:
        return "; ".join(validate_notification_emails(self.cleaned_data["notification_emails"]))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("use_basic_auth") and cleaned.get("username"):
            try:
                validate_credentials_domain(cleaned["username"], cleaned.get("domain", ""))
            except forms.ValidationError as error:
                self.add_error(None if hasattr(error, "error_dict") else "domain", error)
        guarded = set(config_changes.RESYNC_FIELDS) | set(config_changes.CREDENTIAL_FIELDS)
        if set(self.changed_data) & guarded and config_changes.sync_running():
            raise forms.ValidationError(config_changes.SYNC_RUNNING_MESSAGE)
        return cleaned


@admin.register(ExchangeConfig)
class ExchangeConfigAdmin(admin.ModelAdmin):
    """The singleton: one row, never deleted; saved through config_changes (resync reset)."""

    form = ExchangeConfigAdminForm
    readonly_fields = ("installation_id", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ExchangeConfig.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            outcome = config_changes.save_config(obj, changed=form.changed_data)
        except config_changes.SyncRunning as refused:  # a sync started after clean()
            messages.error(request, str(refused))
            return
        if outcome.resync_reset:
            count = outcome.mailboxes_reset
            text = ngettext(
                "Full resync requested for %(count)d mailbox.",
                "Full resync requested for %(count)d mailboxes.",
                count,
            )
            messages.info(request, text % {"count": count})


@admin.register(MailboxSettings)
class MailboxSettingsAdmin(admin.ModelAdmin):
    """Support view. Who syncs and which mailbox is decided on the extension's pages only
    (enabling stores the mailbox; a change needs a connection test: docs/security.md, "Whose
    mailbox"), so both are read-only here; the other fields keep the model's validators."""

    exclude = ("password",)
    readonly_fields = ("resource", "sync_enabled", "mailbox", *STATUS_FIELDS)
    list_display = ("resource", "effective_mailbox", "sync_enabled", "status", "last_attempt_at")
    list_filter = ("sync_enabled", "status")
    list_select_related = ("resource",)
    search_fields = ("resource__first_name", "resource__last_name", "resource__email", "mailbox")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from enabling a resource or saving its MS Exchange tab


@admin.register(FolderSyncState)
class FolderSyncStateAdmin(admin.ModelAdmin):
    list_display = ("mailbox_settings", "folder", "updated_at")
    list_select_related = ("mailbox_settings__resource",)
    readonly_fields = ("mailbox_settings", "folder", "state", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # states come from Exchange; deleting one forces a full resync of a folder


class ReadOnlyAdmin(admin.ModelAdmin):
    """Sync bookkeeping: written by the sync engine only, shown for support."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ItemLink)
class ItemLinkAdmin(ReadOnlyAdmin):
    list_display = ("mailbox_settings", "kind", "psa_id", "state", "origin", "updated_at")
    list_filter = ("kind", "state", "origin")
    list_select_related = ("mailbox_settings__resource",)
    search_fields = ("exchange_id",)


class SyncLogEntryInline(admin.TabularInline):
    model = SyncLogEntry
    extra = 0
    can_delete = False
    readonly_fields = ("level", "kind", "psa_key", "exchange_id", "message")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("mailbox_settings", "started_at", "outcome", "trigger", "conflicts", "errors")
    list_filter = ("outcome", "trigger")
    list_select_related = ("mailbox_settings__resource",)
    inlines = [SyncLogEntryInline]
