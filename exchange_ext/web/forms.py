"""The forms of the extension's tabs: General, Synchronization, Resources and mailbox settings.

Field names are a contract: operators' scripts post them and the tabs' tests pin them (README,
"Configuring the MS Exchange extension"). Rules every form here keeps:

- Secrets (passwords, client secret, certificate) are write-only: never rendered, not even after
  a failed POST; a blank submission keeps the stored value.
- A field the page shows disabled is ignored on POST: the stored value stays (Django's
  ``disabled`` fields, or an explicit override in ``clean``), so a crafted POST changes nothing
  the UI does not allow.
- Connection-test findings (``ConnectionReport.field_errors``) are *warnings* on the fields, kept
  apart from validation errors: see :class:`WarningBoundField`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.boundfield import BoundField
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from exchange_ext.models import ExchangeConfig, ImportMode, MailboxSettings
from exchange_ext.web.validators import (
    validate_credentials_domain,
    validate_notification_emails,
    validate_password_length,
    validate_server_address,
)

INTERVAL_MESSAGE = _("Sync interval must be between 10 and 1440 minutes")
DAYS_MESSAGE = _("Enter a number of days between 1 and 30")
KEEP_PASSWORD_HELP = _("Leave blank to keep the stored password.")
SHARED_ACCOUNT_HELP = _(
    "Your administrator syncs all mailboxes with a shared service account; no password is needed."
)
TURNED_OFF_HELP = _("Turned off by your administrator.")
SHARED_ACCOUNT_ADMIN_HELP = _(
    "This resource's mailbox syncs with the shared sync account of the General tab; no "
    "password is needed."
)
TURNED_OFF_ADMIN_HELP = _("Turned off for every resource on the Synchronization tab.")
#: What turning an item type off does to what is already synced (docs/sync-rules.md, "Which
#: kinds a mailbox syncs"): nothing is deleted, links are kept for when it is turned on again.
TURN_OFF_KEEPS_HELP = _(
    "Turning it off stops syncing; items already in Exchange stay there (an administrator can "
    "delete them with Remove synced items)."
)
#: The same on a resource's tab, where Remove synced items is the administrator's own panel.
TYPE_OFF_KEEPS_HELP = _("Turning it off stops syncing; items already in Exchange stay there.")
IMPORT_OFF_KEEPS_HELP = _(
    "Turning it off stops importing; appointments already imported stay in the PSA."
)
PUBLIC_FOLDER_WARNING = _("Every Exchange user in your organisation can read this folder.")
MAILBOX_READ_ONLY_HELP = _(
    "Set by your administrator when your sync was enabled; only an administrator changes it."
)
MAILBOX_ADMIN_HELP = _(
    "The mailbox this resource's sync opens. A new address is saved only after a connection "
    "test of it passes."
)
MAILBOX_BEFORE_ENABLING_HELP = _(
    "Blank: the resource's PSA email when you enable it on the Resources tab."
)


def validate_interval(value: int) -> None:
    if not 10 <= value <= 1440:
        raise ValidationError(INTERVAL_MESSAGE, code="interval_range")


def validate_days(value: int) -> None:
    if not 1 <= value <= 30:
        raise ValidationError(DAYS_MESSAGE, code="days_range")


class SecretTextarea(forms.Textarea):
    """A textarea that never shows a value: for pasting a PEM certificate + private key."""

    def format_value(self, value: Any) -> None:
        return None


class WarningBoundField(BoundField):
    """A bound field that also knows the connection test's warning for it (or "")."""

    @property
    def warning(self) -> str:
        return getattr(self.form, "warnings", {}).get(self.name, "")

    @property
    def is_checkbox(self) -> bool:
        return isinstance(self.field.widget, forms.CheckboxInput)


class WarningsMixin:
    """Forms whose fields the connection test can mark with a warning."""

    bound_field_class = WarningBoundField
    warnings: dict[str, str]

    def add_warnings(self, field_errors: dict[str, str]) -> None:
        """Mark fields with the connection test's messages (the page shows its summary on top)."""
        self.warnings = {n: m for n, m in field_errors.items() if n in self.fields}  # type: ignore[attr-defined]


class SecretFieldsMixin(WarningsMixin):
    """Write-only secrets on a ModelForm: never pre-filled; blank keeps the stored value."""

    secret_fields: tuple[str, ...] = ()

    def _init_secrets(self) -> None:
        form: Any = self
        for name in self.secret_fields:
            form.initial[name] = ""  # model_to_dict would hand the Secret to the widget
            if getattr(form.instance, name):
                form.fields[name].help_text = _("A value is stored. Leave blank to keep it.")

    def stored_or_typed(self, name: str) -> Any:
        """The posted secret, or the stored one when the field was left blank."""
        form: Any = self
        return form.cleaned_data.get(name) or getattr(form.instance, name)

    def _clean_secrets(self) -> None:
        form: Any = self
        for name in self.secret_fields:
            if name in form.cleaned_data and not form.cleaned_data[name]:
                form.cleaned_data[name] = getattr(form.instance, name)

    @property
    def typed_secrets(self) -> list[str]:
        """The secret fields the user typed into (they cannot be shown again)."""
        form: Any = self
        return [n for n in self.secret_fields if form.data.get(form.add_prefix(n))]


def password_field() -> forms.CharField:
    """A write-only password input (never rendered back; blank keeps the stored one).

    Its length limit (``validators.MAX_PASSWORD_LENGTH``) is a validator, not ``max_length``: Django
    would render that as ``maxlength``, and a browser cuts a longer paste to it without a word,
    so the user saw only "The server rejected the username or password"."""
    return forms.CharField(
        label=_("Password"),
        required=False,
        validators=[validate_password_length],
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class GeneralForm(SecretFieldsMixin, forms.ModelForm):
    """The General tab (README, "Configuring the MS Exchange extension").

    ``clean`` forces ``use_graph`` off with basic auth and checks credentials.
    """

    secret_fields = ("password", "client_secret", "client_certificate")
    BASIC_FIELDS = ("username", "password", "domain")
    OFFICE_FIELDS = ("tenant_id", "client_id", "client_secret", "client_certificate")

    password = password_field()
    client_secret = forms.CharField(
        label=_("Client secret"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    client_certificate = forms.CharField(
        label=_("Certificate and private key (PEM)"),
        required=False,
        widget=SecretTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text=_("Paste the certificate and its private key, or use a client secret instead."),
    )
    sync_interval_minutes = forms.IntegerField(
        label=_("Request a sync every"),
        validators=[validate_interval],
        widget=forms.NumberInput(attrs={"min": 10, "max": 1440}),
        help_text=_("Minutes, from 10 to 1440. A sync may take longer when Exchange is busy."),
    )

    class Meta:
        model = ExchangeConfig
        fields = [
            "enabled",
            "profile_name",
            "hosted_by_third_party",
            "server_address",
            "virtual_directory",
            "exchange_version",
            "use_graph",
            "sync_interval_minutes",
            "use_basic_auth",
            "username",
            "password",
            "domain",
            "use_for_all_users",
            "tenant_id",
            "client_id",
            "client_secret",
            "client_certificate",
            "notification_emails",
        ]
        labels = {"username": _("Username"), "password": _("Password"), "domain": _("Domain")}
        help_texts = {
            "enabled": _("When off, settings can be saved and tested but nothing syncs."),
            "server_address": _(
                "Host name, optionally with :port (443 or 2610). Not an IP address."
            ),
            "virtual_directory": _("Leave blank for /EWS/Exchange.asmx."),
            "domain": _(r"Not needed when the username is DOMAIN\user or user@domain."),
            "use_for_all_users": _(
                "The sync account impersonates every enabled mailbox; users enter no password."
            ),
            "notification_emails": _("Separate addresses with semicolons."),
        }
        widgets = {
            "notification_emails": forms.TextInput(
                attrs={"placeholder": "ops@example.com; lead@example.com"}
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings = {}
        self.fields["profile_name"].required = True
        # Required for the EWS setups only (clean_server_address: the validator refuses a
        # blank address); Graph's endpoint is GRAPH_BASE_URL.
        self.fields["server_address"].required = False
        self._stored = {name: getattr(self.instance, name) for name in self._meta.fields}
        self._init_secrets()

    @property
    def changed_fields(self) -> list[str]:
        """Fields whose saved value would differ from the stored one (after forcing/keeping).

        Unlike ``changed_data`` (posted vs. initial), a field forced by the rules ("Use MS
        Graph" under basic auth) or a secret left blank does not count as a change.
        """
        changed = [n for n, old in self._stored.items() if self.cleaned_data.get(n) != old]
        if self._stored["use_basic_auth"] and self.cleaned_data.get("use_basic_auth"):
            # Under basic auth the flag means nothing (EWS either way); a stored default of
            # "on" being forced off is no credential change.
            changed = [n for n in changed if n != "use_graph"]
        return changed

    def posts_graph(self) -> bool:
        """Whether the POST chooses Exchange Online over Microsoft Graph (Office 365 with
        "Use MS Graph"), read from the raw data as :meth:`ExchangeConfig.backend_name` does."""
        return not self._posted_box("use_basic_auth") and self._posted_box("use_graph")

    def _posted_box(self, name: str) -> bool:
        widget = self.fields[name].widget
        return bool(widget.value_from_datadict(self.data, self.files, self.add_prefix(name)))

    def clean_server_address(self) -> str:
        if self.posts_graph():
            return str(self._stored["server_address"])  # not asked: a posted value is ignored
        return validate_server_address(self.cleaned_data["server_address"])

    def clean_notification_emails(self) -> str:
        return "; ".join(validate_notification_emails(self.cleaned_data["notification_emails"]))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("use_basic_auth"):
            cleaned["use_graph"] = False  # hidden in the UI, so never trusted from the POST
            self._require("username", gettext("Enter the sync account's username."))
            if not self.stored_or_typed("password"):
                self.add_error("password", gettext("Enter the sync account's password."))
            if cleaned.get("username"):
                self._check_domain(cleaned)
        else:
            self._require("tenant_id", gettext("Enter the tenant ID of your Office 365 directory."))
            self._require("client_id", gettext("Enter the application (client) ID."))
            if not (
                self.stored_or_typed("client_secret") or self.stored_or_typed("client_certificate")
            ):
                self.add_error("client_secret", gettext("Enter a client secret or a certificate."))
        self._clean_secrets()
        return cleaned

    def _require(self, name: str, message: str) -> None:
        if name not in self.errors and not self.cleaned_data.get(name):
            self.add_error(name, message)

    def _check_domain(self, cleaned: dict[str, Any]) -> None:
        try:
            validate_credentials_domain(cleaned["username"], cleaned.get("domain", ""))
        except ValidationError as error:
            # Keyed errors ({"domain": ...}) land on their fields; a bare one on Domain.
            self.add_error(None if hasattr(error, "error_dict") else "domain", error)


class SynchronizationForm(forms.ModelForm):
    """The Synchronization tab (docs/sync-rules.md, "Import modes", "Public contacts folder").

    Free time is kept as stored with "do not import"; the public folder with Graph.
    """

    bound_field_class = WarningBoundField

    past_days = forms.IntegerField(
        label=_("Past calendar entries"),
        validators=[validate_days],
        widget=forms.NumberInput(attrs={"min": 1, "max": 30}),
        help_text=_("Days back the sync looks (1–30)."),
    )
    recurring_days = forms.IntegerField(
        label=_("Recurring calendar entries"),
        validators=[validate_days],
        widget=forms.NumberInput(attrs={"min": 1, "max": 30}),
        help_text=_("Days ahead recurring series are expanded (1–30)."),
    )

    class Meta:
        model = ExchangeConfig
        fields = [
            "sync_appointments",
            "sync_contacts",
            "sync_service_calls",
            "sync_todos",
            "public_contacts_folder",
            "import_mode",
            "import_free_time",
            "past_days",
            "recurring_days",
        ]
        widgets = {"import_mode": forms.RadioSelect}
        help_texts = {
            "sync_appointments": _(
                "Export PSA appointments to each resource's calendar. Turning it off stops "
                "syncing; items already in Exchange stay there (an administrator can delete "
                "them with Remove synced items)."
            ),
            "sync_contacts": TURN_OFF_KEEPS_HELP,
            "sync_service_calls": _(
                "Export service calls to every assigned resource. Turning it off stops "
                "syncing; items already in Exchange stay there (an administrator can delete "
                "them with Remove synced items)."
            ),
            "sync_todos": _(
                "Export the to-dos assigned to each resource as calendar appointments; their "
                "date and time changes come back. Turning it off stops syncing; items already "
                "in Exchange stay there (an administrator can delete them with Remove synced "
                "items)."
            ),
            "import_free_time": _(
                "Off: appointments shown as Free are not imported. Imported free time does not "
                "count toward availability."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uses_graph = self.instance.backend_name == "graph"
        if self.uses_graph:
            self.fields["public_contacts_folder"].disabled = True
        self.fields["import_mode"].choices = [
            (ImportMode.ALL, gettext("With ALL details (subject, body, attendees, location)")),
            (ImportMode.TIMES_ONLY, gettext("Without details (start and end only)")),
            (ImportMode.NONE, gettext("Do not import")),
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("import_mode") == ImportMode.NONE:
            # The checkbox is disabled in the page; keep what is stored.
            cleaned["import_free_time"] = self.instance.import_free_time
        return cleaned


class IdListField(forms.Field):
    """A list of positive integer ids posted as repeated values (checkboxes, hidden inputs)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> set[int]:
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        try:
            ids = {int(v) for v in values}
        except (TypeError, ValueError):
            raise ValidationError(_("Invalid resource id."), code="invalid") from None
        if any(i <= 0 for i in ids):
            raise ValidationError(_("Invalid resource id."), code="invalid")
        return ids


class ResourcesForm(forms.Form):
    """The Resources tab's POST: ``shown`` ids of the page and the ``enabled`` ones among them.

    Only the resources shown on the page change, so saving page 2 leaves page 1 alone.
    """

    shown = IdListField(required=False)
    enabled = IdListField(required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        shown, enabled = cleaned.get("shown", set()), cleaned.get("enabled", set())
        if not enabled <= shown:
            raise ValidationError(gettext("Only resources shown on the page can be enabled."))
        return cleaned

    @property
    def disabled_ids(self) -> set[int]:
        return self.cleaned_data["shown"] - self.cleaned_data["enabled"]


class MailboxSettingsForm(SecretFieldsMixin, forms.ModelForm):
    """A resource's MS Exchange tab, the same on the technician's profile and the admin's page
    (README, "Configuring the MS Exchange extension").

    ``config`` decides which fields are disabled: credentials when a shared sync account is
    used, each item type the administrator turned off, import with "do not import".

    The mailbox address is the administrator's decision (docs/security.md, "Whose mailbox"):
    read-only unless ``admin``; an administrator's change must be free (one mailbox belongs to
    one resource) and pass a connection test of the new address (``probe``, called with the
    unsaved settings) before it is saved.
    """

    secret_fields = ("password",)
    TYPE_SWITCHES = {
        "export_appointments": "sync_appointments",
        "export_service_calls": "sync_service_calls",
        "export_todos": "sync_todos",
        "export_contacts": "sync_contacts",
    }

    password = password_field()
    past_days = forms.IntegerField(
        label=_("Past days"),
        required=False,
        validators=[validate_days],
        widget=forms.NumberInput(attrs={"min": 1, "max": 30}),
    )
    recurring_days = forms.IntegerField(
        label=_("Recurring days"),
        required=False,
        validators=[validate_days],
        widget=forms.NumberInput(attrs={"min": 1, "max": 30}),
    )

    class Meta:
        model = MailboxSettings
        fields = [
            "mailbox",
            "username",
            "password",
            "export_appointments",
            "import_appointments",
            "export_service_calls",
            "export_todos",
            "export_contacts",
            "past_days",
            "recurring_days",
        ]
        labels = {"username": _("Username"), "password": _("Password")}

    def __init__(
        self,
        *args: Any,
        config: ExchangeConfig,
        admin: bool = False,
        probe: Callable[[MailboxSettings], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.warnings = {}
        self.config = config
        self.admin = admin
        self._probe = probe
        self._stored_mailbox = self.instance.mailbox
        if not self.instance.mailbox:
            self.initial["mailbox"] = self.instance.resource.email.lower()
        self._init_mailbox()
        default_help = gettext("Blank: %(days)s (organisation default).")
        self.fields["past_days"].help_text = default_help % {"days": config.past_days}
        self.fields["recurring_days"].help_text = default_help % {"days": config.recurring_days}
        self._init_secrets()
        for name in self.TYPE_SWITCHES:
            self.fields[name].help_text = TYPE_OFF_KEEPS_HELP
        self.fields["import_appointments"].help_text = IMPORT_OFF_KEEPS_HELP
        self._disable_by_config(config)

    def _disable_by_config(self, config: ExchangeConfig) -> None:
        # The administrator's page speaks to the administrator, the profile to the technician.
        shared_help = SHARED_ACCOUNT_ADMIN_HELP if self.admin else SHARED_ACCOUNT_HELP
        if config.use_for_all_users:
            self._disable("username", shared_help)
            self._disable("password", shared_help)
        turned_off = [n for n, switch in self.TYPE_SWITCHES.items() if not getattr(config, switch)]
        if config.import_mode == ImportMode.NONE:
            turned_off.append("import_appointments")
        for name in turned_off:
            self._disable(name, TURNED_OFF_ADMIN_HELP if self.admin else TURNED_OFF_HELP)
            # Shown unchecked (nothing of this type syncs); the stored choice is kept for
            # when the administrator turns the type back on (see clean).
            self.initial[name] = False
        self._kept = turned_off

    def _disable(self, name: str, why: str) -> None:
        self.fields[name].disabled = True  # Django then ignores the posted value
        self.fields[name].help_text = why

    def _init_mailbox(self) -> None:
        field = self.fields["mailbox"]
        if not self.admin:
            field.disabled = True  # Django ignores a posted value: the stored one is kept
            field.help_text = MAILBOX_READ_ONLY_HELP
        elif self.instance.sync_enabled:
            field.required = True
            field.help_text = MAILBOX_ADMIN_HELP
        else:
            field.help_text = MAILBOX_BEFORE_ENABLING_HELP

    def clean_mailbox(self) -> str:
        if not self.admin:
            return self._stored_mailbox
        mailbox = self.cleaned_data["mailbox"].strip().lower()
        if mailbox == self._stored_mailbox:
            return mailbox
        if not self.instance.sync_enabled and mailbox == self.instance.resource.email.lower():
            return ""  # not enabled yet: enabling stores the PSA email of that moment
        owner = (
            MailboxSettings.objects.filter(mailbox=mailbox)
            .exclude(resource_id=self.instance.resource_id)
            .select_related("resource")
            .first()
        )
        if mailbox and owner is not None:
            raise ValidationError(
                gettext(
                    "%(mailbox)s is already the mailbox of %(resource)s. One mailbox belongs to "
                    "one resource."
                )
                % {"mailbox": mailbox, "resource": owner.resource}
            )
        return mailbox

    def _test_new_mailbox(self, cleaned: dict[str, Any]) -> None:
        """An administrator's new address is saved only after it passed a connection test."""
        mailbox = cleaned.get("mailbox")
        if not mailbox or mailbox == self._stored_mailbox or self._probe is None:
            return
        trial = copy.copy(self.instance)
        trial.mailbox = mailbox
        report = self._probe(trial)
        if not report.ok:
            text = gettext(
                "The connection test of %(mailbox)s failed, so the address was not changed: "
                "%(message)s"
            )
            self.add_error("mailbox", text % {"mailbox": mailbox, "message": report.message})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in self._kept:
            cleaned[name] = getattr(self.instance, name)
        self._clean_secrets()
        if not self.errors:
            self._test_new_mailbox(cleaned)
        return cleaned

    @property
    def mailbox_changed(self) -> bool:
        """Whether saving moves the sync to another mailbox (an administrator's change)."""
        return bool(self._stored_mailbox) and self.cleaned_data["mailbox"] != self._stored_mailbox
