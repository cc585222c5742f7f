"""The extension's configuration, per-resource mailbox settings and sync bookkeeping.

Field names are the tabs' form field names (README, "Configuring the MS Exchange extension"):
the forms use them verbatim, and operators' scripts rely on them. Secrets live in
:class:`~exchange_ext.secrets.EncryptedSecretField` columns.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from exchange_ext.secrets import EncryptedSecretField
from psa.resources.models import Resource

DAYS_VALIDATORS = [MinValueValidator(1), MaxValueValidator(30)]


class ExchangeVersion(models.TextChoices):
    EXCHANGE_2013 = "2013", "Exchange 2013"
    EXCHANGE_2016 = "2016", "Exchange 2016"
    EXCHANGE_2019 = "2019", "Exchange 2019"
    ONLINE = "online", "Exchange Online"


class ImportMode(models.TextChoices):
    ALL = "all", _("With ALL details")
    TIMES_ONLY = "times_only", _("Without details")
    NONE = "none", _("Do not import")


class ExchangeConfig(models.Model):
    """The one configuration of this installation (row pk=1, see :meth:`load`)."""

    # General tab (README, "Configuring the MS Exchange extension")
    enabled = models.BooleanField(_("Enable MS Exchange integration"), default=True)
    profile_name = models.CharField(_("Profile name"), max_length=100, blank=True)
    hosted_by_third_party = models.BooleanField(
        _("Our Exchange server is hosted by a third party"), default=False
    )
    server_address = models.CharField(_("Exchange server address"), max_length=255, blank=True)
    virtual_directory = models.CharField(
        _("Exchange server virtual directory"), max_length=255, blank=True
    )
    exchange_version = models.CharField(
        _("Version"),
        max_length=10,
        choices=ExchangeVersion.choices,
        default=ExchangeVersion.EXCHANGE_2016,
    )
    use_graph = models.BooleanField(_("Use MS Graph"), default=True)
    sync_interval_minutes = models.PositiveIntegerField(
        _("Request a sync every"),
        default=15,
        validators=[MinValueValidator(10), MaxValueValidator(1440)],
    )
    use_basic_auth = models.BooleanField(
        _("Use on-premise setup (basic authentication)"), default=True
    )
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedSecretField(blank=True)
    domain = models.CharField(max_length=255, blank=True)
    use_for_all_users = models.BooleanField(
        _("Use these credentials to sync all user accounts"), default=True
    )
    tenant_id = models.CharField(_("Tenant ID"), max_length=100, blank=True)
    client_id = models.CharField(_("Application (client) ID"), max_length=100, blank=True)
    client_secret = EncryptedSecretField(_("Client secret"), blank=True)
    client_certificate = EncryptedSecretField(_("Certificate and private key (PEM)"), blank=True)
    notification_emails = models.TextField(_("Send email notifications to"), blank=True)

    # Synchronization tab (docs/sync-rules.md, "What syncs", "Import modes", "Sync window")
    sync_appointments = models.BooleanField(_("Enable appointments"), default=True)
    sync_contacts = models.BooleanField(
        _("Share contacts where the resource is account manager or opportunity owner"), default=True
    )
    sync_service_calls = models.BooleanField(_("Enable service calls"), default=True)
    sync_todos = models.BooleanField(_("Enable to-dos"), default=True)
    public_contacts_folder = models.BooleanField(
        _("Create public folder of ALL PSA contacts (only with EWS)"), default=False
    )
    import_mode = models.CharField(
        _("Import of Exchange appointments"),
        max_length=12,
        choices=ImportMode.choices,
        default=ImportMode.ALL,
    )
    import_free_time = models.BooleanField(_('Send "free time" appointments to PSA'), default=True)
    past_days = models.PositiveSmallIntegerField(
        _("Past calendar entries"), default=7, validators=DAYS_VALIDATORS
    )
    recurring_days = models.PositiveSmallIntegerField(
        _("Recurring calendar entries"), default=14, validators=DAYS_VALIDATORS
    )

    # Bookkeeping
    installation_id = models.UUIDField(
        default=uuid.uuid4, editable=False, help_text=_("Tags every item this installation writes.")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("MS Exchange configuration")
        permissions = [("manage_extension", _("Can configure the MS Exchange extension"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(sync_interval_minutes__gte=10, sync_interval_minutes__lte=1440),
                name="exchange_config_interval_range",
            ),
            models.CheckConstraint(
                condition=Q(past_days__gte=1, past_days__lte=30)
                & Q(recurring_days__gte=1, recurring_days__lte=30),
                name="exchange_config_days_range",
            ),
        ]

    def __str__(self) -> str:
        return self.profile_name or "MS Exchange"

    @classmethod
    def load(cls) -> ExchangeConfig:
        """The configuration row, created with defaults on first use."""
        config, _ = cls.objects.get_or_create(pk=1)
        return config

    @property
    def backend_name(self) -> str:
        """``ews`` or ``graph``: basic auth → EWS; Office 365 + Graph → Graph (docs/sync-rules.md,
        "Backends")."""
        return "graph" if (not self.use_basic_auth and self.use_graph) else "ews"


class MailboxSettings(models.Model):
    """One resource's MS Exchange settings and sync status (profile › MS Exchange tab)."""

    class Status(models.TextChoices):
        NEVER = "never", _("Not synced yet")
        OK = "ok", _("OK")
        FAILING = "failing", _("Failing")
        DISABLED = "disabled", _("Disabled")
        HELD = "held", _("Held: deletions wait for an administrator")

    resource = models.OneToOneField(
        Resource, on_delete=models.CASCADE, related_name="exchange_settings"
    )
    sync_enabled = models.BooleanField(default=False, help_text=_("Set on the Resources tab."))
    # Stored when an administrator enables the resource and changed by administrators only
    # (docs/security.md, "Whose mailbox"): the shared account opens whatever address is here.
    mailbox = models.EmailField(
        _("Mailbox address"),
        blank=True,
        help_text=_("Set when the resource is enabled; only an administrator changes it."),
    )
    # The address the sync used before an administrator changed it, until a run has moved the
    # items to the new one (docs/sync-rules.md, "Mailbox moves"; exchange_ext/engine/moves.py).
    previous_mailbox = models.EmailField(
        _("Previous mailbox address"),
        blank=True,
        help_text=_("Set when the address changes; cleared once the next run moved the items."),
    )
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedSecretField(blank=True)
    export_appointments = models.BooleanField(_("Sync PSA appointments to Exchange"), default=True)
    import_appointments = models.BooleanField(_("Sync Exchange appointments to PSA"), default=True)
    export_service_calls = models.BooleanField(_("Sync service calls"), default=True)
    export_todos = models.BooleanField(_("Sync to-dos"), default=True)
    export_contacts = models.BooleanField(_("Sync contacts"), default=True)
    past_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=DAYS_VALIDATORS)
    recurring_days = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=DAYS_VALIDATORS
    )

    # Status (written by the sync runner)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEVER)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    enabled_at = models.DateTimeField(null=True, blank=True)
    sync_requested_at = models.DateTimeField(
        null=True, blank=True, help_text=_('Set by "Sync now"; cleared when a run picks it up.')
    )
    # Written with sync_requested_at: the SyncRun.Trigger the dispatcher queues the request
    # with (a saved General tab is "Settings saved", not "Scheduled").
    sync_requested_trigger = models.CharField(max_length=20, blank=True)
    resync_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "Set when a server change resets sync state: the next run re-reads everything."
        ),
    )

    # Operations (exchange_ext.jobs.dispatcher / notifications): back-off and alert bookkeeping.
    last_error_kind = models.CharField(
        max_length=40, blank=True, help_text=_("The error class of the last failed run.")
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text=_("The dispatcher's clock when it last queued a sync.")
    )
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text=_("A sync task is queued (at most one until it starts).")
    )
    notified_state = models.CharField(
        max_length=10,
        blank=True,
        help_text=_("What the admins were last told: '' (nothing/OK), 'failing' or 'outage'."),
    )
    last_notified_at = models.DateTimeField(null=True, blank=True)

    # Lease: a mailbox is synced by one worker at a time; the token fences stale commits.
    lease_token = models.BigIntegerField(default=0)
    lease_holder = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    # "Remove synced items" (docs/sync-rules.md, "Removing synced items"): the item kinds an
    # administrator asked to remove from the mailbox, until a removal run has served them.
    removal_kinds = models.CharField(
        _("Item types to remove"),
        max_length=100,
        blank=True,
        help_text=_("Item types waiting for Remove synced items, comma-separated."),
    )
    removal_requested_at = models.DateTimeField(_("Removal requested"), null=True, blank=True)
    removal_queued_at = models.DateTimeField(
        _("Removal queued"),
        null=True,
        blank=True,
        help_text=_("A removal task is queued (at most one until it starts)."),
    )

    class Meta:
        verbose_name = _("mailbox settings")
        verbose_name_plural = _("mailbox settings")
        constraints = [
            models.CheckConstraint(
                condition=(Q(past_days__isnull=True) | Q(past_days__gte=1, past_days__lte=30))
                & (
                    Q(recurring_days__isnull=True)
                    | Q(recurring_days__gte=1, recurring_days__lte=30)
                ),
                name="mailbox_settings_days_range",
            ),
            # One mailbox belongs to one resource (stored lower-cased).
            models.UniqueConstraint(
                fields=["mailbox"], condition=~Q(mailbox=""), name="mailbox_settings_mailbox_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource} <{self.effective_mailbox}>"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Stores the address lower-cased; an enabled row without one takes the resource's
        PSA email now, as enabling on the Resources tab does (a later change of that email
        never moves the sync). A changed address the sync has used is a mailbox move: the old
        one is kept in ``previous_mailbox`` until a run has moved the items."""
        self.mailbox = self.mailbox.strip().lower()
        update_fields = kwargs.get("update_fields")
        if self.sync_enabled and not self.mailbox and self.resource_id:
            self.mailbox = self.resource.email.strip().lower()
            if update_fields is not None:
                kwargs["update_fields"] = update_fields = {*update_fields, "mailbox"}
        saves_mailbox = update_fields is None or "mailbox" in update_fields
        if saves_mailbox and self._note_move() and update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "previous_mailbox"}
        super().save(*args, **kwargs)
        self._loaded_mailbox = self.mailbox

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> MailboxSettings:
        instance = super().from_db(db, field_names, values)
        instance._loaded_mailbox = instance.__dict__.get("mailbox", "")  # deferred: unknown
        return instance

    def _note_move(self) -> bool:
        """Record a change of the address the sync uses; whether ``previous_mailbox`` changed.

        The oldest unmoved address is kept (A → B → C before any run: the items are in A); a
        move back to it cancels the move. An address nothing was synced with yet (no link, no
        sync state: a typo corrected before the first run) moves nothing.
        """
        loaded = getattr(self, "_loaded_mailbox", "")
        if not loaded or loaded == self.mailbox:
            return False
        before = self.previous_mailbox
        if not before and (self.links.exists() or self.folder_states.exists()):
            self.previous_mailbox = loaded
        if self.previous_mailbox == self.mailbox:
            self.previous_mailbox = ""
        return self.previous_mailbox != before

    @property
    def move_pending(self) -> bool:
        """Whether the items still have to move from ``previous_mailbox`` to ``mailbox``."""
        return bool(self.previous_mailbox) and self.previous_mailbox != self.mailbox

    @property
    def effective_mailbox(self) -> str:
        """The address the sync opens: the stored one only, never the resource's current PSA
        email (blank until the resource is first enabled)."""
        return self.mailbox.lower()

    @property
    def email_differs(self) -> bool:
        """Whether the resource's PSA email is no longer the mailbox the sync opens (shown to
        administrators on the resource's page)."""
        return bool(self.mailbox) and self.mailbox != self.resource.email.strip().lower()


class FolderSyncState(models.Model):
    """The last durable sync state (EWS SyncState / Graph deltaLink) of one mailbox folder."""

    mailbox_settings = models.ForeignKey(
        MailboxSettings, on_delete=models.CASCADE, related_name="folder_states"
    )
    folder = models.CharField(max_length=50, help_text=_("calendar, contacts, public_contacts …"))
    state = models.TextField(blank=True)
    # The day the recurring window was last expanded (one CalendarView a day when nothing
    # in the feed asks for one).
    window_read_on = models.DateField(null=True, blank=True)
    # The mass-delete guard's base: the folder's synced items when the current pass of the
    # change feed began (null between passes). docs/sync-rules.md, "Mass-delete guard".
    pass_base = models.PositiveIntegerField(null=True, blank=True)
    # When the folder's latest full read began: a resync requested before then is served by
    # it (resumed, when a budget split it across runs) instead of starting over.
    # docs/sync-rules.md, "Scheduling, leases and budgets".
    full_read_since = models.DateTimeField(null=True, blank=True)
    # The PSA side read incrementally (docs/performance.md, "Incremental planning"): the audit
    # trail's entries up to ``psa_cursor`` are planned; ``planned_as`` fingerprints the options
    # the folder was last planned under in full, at ``reconciled_at`` (daily at most).
    psa_cursor = models.BigIntegerField(null=True, blank=True)
    planned_as = models.CharField(max_length=64, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    # Keys whose writes failed when last planned ("kind:psa_id"): planned again by the next
    # cycle, as a whole plan would.
    retry_keys = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_settings", "folder"], name="folder_sync_state_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_settings_id}/{self.folder}"


class FullReadSeen(models.Model):
    """An Exchange id a full read in progress has listed (one row per id, per mailbox folder).

    A full read split across runs plans each page as it comes; "absent from the full read
    means gone" is decided when its last page is read, against these rows, which are then
    dropped (docs/sync-rules.md, "Scheduling, leases and budgets").
    """

    mailbox_settings = models.ForeignKey(
        MailboxSettings, on_delete=models.CASCADE, related_name="full_read_seen"
    )
    folder = models.CharField(max_length=50)
    exchange_id = models.CharField(max_length=512)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_settings", "folder", "exchange_id"],
                name="full_read_seen_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_settings_id}/{self.folder}: {self.exchange_id}"


class HeldDeletion(models.Model):
    """A destructive op the sync planned, kept until its pass of the change feed is complete
    (``pending``) or until an administrator decides (``held`` by the mass-delete guard).

    docs/sync-rules.md, "Mass-delete guard": deletions are counted over a whole pass and
    applied only when the pass ends within the limit; otherwise they wait here, so the sync
    state may advance while nothing is deleted.
    """

    class Op(models.TextChoices):
        DELETE_IN_EXCHANGE = "delete_in_exchange", _("Delete the Exchange copy")
        DELETE_PSA = "delete_psa", _("Delete the PSA item")
        MARK_EXCHANGE_DELETED = "mark_exchange_deleted", _("Exchange copy gone")
        UNLINK = "unlink", _("Unlink")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending until the pass ends")
        HELD = "held", _("Held by the mass-delete guard")
        CONFIRMED = "confirmed", _("Confirmed: apply at the next run")
        RESTORED = "restored", _("Restore: apply at the next run")

    mailbox_settings = models.ForeignKey(
        MailboxSettings, on_delete=models.CASCADE, related_name="held_deletions"
    )
    folder = models.CharField(max_length=50)
    kind = models.CharField(max_length=20)
    psa_id = models.BigIntegerField()
    op = models.CharField(max_length=30, choices=Op.choices)
    exchange_id = models.CharField(max_length=512, blank=True)
    change_key = models.CharField(max_length=512, blank=True)
    title = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_settings", "kind", "psa_id"], name="held_deletion_unique_key"
            )
        ]
        indexes = [models.Index(fields=["mailbox_settings", "folder", "state"])]

    def __str__(self) -> str:
        return f"{self.mailbox_settings_id}/{self.kind}:{self.psa_id} {self.op} ({self.state})"


class ItemLink(models.Model):
    """The baseline of one synced item in one mailbox (see ``exchange_ext.sync.records.Link``).

    Duplicates are impossible by construction: one row per (mailbox, kind, PSA id) — a service
    call has one row per assigned resource's mailbox — and one row per (mailbox, Exchange id)
    for every non-empty id, whatever the state (an ``unlinked`` row keeps its Exchange id so
    the item is never re-imported). A recurring occurrence's Exchange id is its stable
    occurrence id (master id + original start), so occurrences are distinct rows.
    """

    class State(models.TextChoices):
        LINKED = "linked", _("Linked")
        EXCHANGE_DELETED = "exchange_deleted", _("Deleted in Exchange")
        UNLINKED = "unlinked", _("Unlinked")

    class Origin(models.TextChoices):
        PSA = "psa", _("PSA")
        EXCHANGE = "exchange", _("Exchange")

    mailbox_settings = models.ForeignKey(
        MailboxSettings, on_delete=models.CASCADE, related_name="links"
    )
    kind = models.CharField(max_length=20)
    psa_id = models.BigIntegerField()
    folder = models.CharField(max_length=50, default="calendar")
    exchange_id = models.CharField(max_length=1024, blank=True)
    change_key = models.CharField(max_length=512, blank=True)
    psa_digest = models.CharField(max_length=160, blank=True)
    exchange_digest = models.CharField(max_length=160, blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.PSA)
    state = models.CharField(max_length=20, choices=State.choices, default=State.LINKED)
    exchange_start = models.DateTimeField(null=True, blank=True)
    is_organizer = models.BooleanField(default=True)
    # The Exchange item's identity whatever its id (docs/sync-rules.md, "Re-identification"):
    # its iCalendar UID (a series' for an occurrence) and an occurrence's original start.
    # An imported item's row with an empty exchange_id awaits being found again by it.
    ical_uid = models.CharField(max_length=1024, blank=True)
    original_start = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_settings", "kind", "psa_id"], name="item_link_unique_psa_item"
            ),
            models.UniqueConstraint(
                fields=["mailbox_settings", "exchange_id"],
                condition=~Q(exchange_id=""),
                name="item_link_unique_exchange_item",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.psa_id} ⇄ {self.exchange_id[:20]}… ({self.state})"


class PublicFolderState(models.Model):
    """The installation-wide public contacts folder job (row pk=1, see :meth:`load`).

    Holds the job's lease (same fencing scheme as a mailbox's,
    :mod:`exchange_ext.engine.leases`) and its status. No sync state: EWS public folders have
    no change feed, every run reads the whole folder (see :mod:`exchange_ext.engine.public_folder`).
    """

    # Lease: one worker at a time; the token fences stale commits.
    lease_token = models.BigIntegerField(default=0)
    lease_holder = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text=_("The dispatcher's clock when it last queued the job.")
    )

    class Meta:
        verbose_name = _("public contacts folder state")

    def __str__(self) -> str:
        return "public contacts folder"

    @classmethod
    def load(cls) -> PublicFolderState:
        """The one row, created on first use."""
        state, _ = cls.objects.get_or_create(pk=1)
        return state


class PublicFolderLink(models.Model):
    """The baseline of one PSA item in the public contacts folder (cf. :class:`ItemLink`).

    Its own table, not ItemLink rows: ItemLink's uniqueness is per mailbox, and the public
    folder belongs to none. Duplicates are impossible by construction: one row per
    (kind, PSA id) and one per non-empty Exchange id.
    """

    kind = models.CharField(max_length=20)
    psa_id = models.BigIntegerField()
    exchange_id = models.CharField(max_length=1024, blank=True)
    change_key = models.CharField(max_length=512, blank=True)
    psa_digest = models.CharField(max_length=160, blank=True)
    exchange_digest = models.CharField(max_length=160, blank=True)
    origin = models.CharField(
        max_length=10, choices=ItemLink.Origin.choices, default=ItemLink.Origin.PSA
    )
    state = models.CharField(
        max_length=20, choices=ItemLink.State.choices, default=ItemLink.State.LINKED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "psa_id"], name="public_link_unique_psa_item"),
            models.UniqueConstraint(
                fields=["exchange_id"],
                condition=~Q(exchange_id=""),
                name="public_link_unique_exchange_item",
            ),
        ]

    def __str__(self) -> str:
        return f"public {self.kind}:{self.psa_id} ⇄ {self.exchange_id[:20]}… ({self.state})"


class SyncRun(models.Model):
    """One sync cycle of one mailbox (or, ``mailbox_settings`` null, of the
    public contacts folder job): when, how it ended, and what it wrote on each side.

    ``counts`` is ``{kind: {side: {action: n}}}`` with actions created/updated/deleted;
    ``error`` is in plain words (never a secret, never a traceback).
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", _("Running")
        OK = "ok", _("OK")
        PARTIAL = "partial", _("Some items failed")
        FAILED = "failed", _("Failed")
        GUARD_TRIPPED = "guard_tripped", _("Stopped: too many deletions")
        SKIPPED = "skipped", _("Skipped (already running)")

    class Trigger(models.TextChoices):
        """Why the run ran (docs/sync-rules.md, "Triggers"). The values are stored in runs and
        in queued tasks' arguments: never rename one, only add."""

        MANUAL = "manual", _("Manual")
        SCHEDULED = "scheduled", _("Scheduled")
        SYNC_NOW = "sync_now", _("Sync now")
        REMOVAL = "removal", _("Remove synced items")
        SETTINGS_SAVED = "settings_saved", _("Settings saved")
        RESOURCE_ENABLED = "resource_enabled", _("Resource enabled")
        PSA_CHANGE = "psa_change", _("PSA change")
        EXCHANGE_CHANGE = "exchange_change", _("Exchange change notification")

    # Null: a run of the installation-wide public contacts folder job.
    mailbox_settings = models.ForeignKey(
        MailboxSettings, on_delete=models.CASCADE, related_name="sync_runs", null=True, blank=True
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    backend = models.CharField(max_length=20, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    conflicts = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Items the run touched beyond the ones stored as SyncRunItem rows (the per-run cap).
    items_omitted = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["mailbox_settings", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.target} {self.started_at:%Y-%m-%d %H:%M} {self.outcome}"

    @property
    def is_public_folder(self) -> bool:
        return self.mailbox_settings_id is None

    @property
    def target(self) -> str:
        """What the run synced, for lists: the mailbox id, or the public contacts folder."""
        return "public contacts folder" if self.is_public_folder else str(self.mailbox_settings_id)

    def side_total(self, side: str, action: str) -> int:
        return sum(by_side.get(side, {}).get(action, 0) for by_side in self.counts.values())

    def summary(self, side: str) -> str:
        """``"2 created, 1 updated"`` for one side; ``"—"`` when nothing was written."""
        words = {
            "created": lambda n: ngettext("%(count)d created", "%(count)d created", n),
            "updated": lambda n: ngettext("%(count)d updated", "%(count)d updated", n),
            "deleted": lambda n: ngettext("%(count)d deleted", "%(count)d deleted", n),
        }
        parts = [
            words[action](n) % {"count": n}
            for action in ("created", "updated", "deleted")
            if (n := self.side_total(side, action))
        ]
        return ", ".join(parts) or "—"

    @property
    def duration(self) -> str:
        """How long the run took, for the run log: ``"12 s"``, ``"1 min 5 s"``, ``"2 h 3 min"``;
        ``"running"`` while it has no end. Seconds are whole (rounded down); a clock step
        that puts the end before the start reads ``"0 s"``."""
        if self.finished_at is None:
            return gettext("running")
        return format_duration((self.finished_at - self.started_at).total_seconds())

    @property
    def psa_summary(self) -> str:
        return self.summary("psa")

    @property
    def exchange_summary(self) -> str:
        return self.summary("exchange")


def format_duration(seconds: float) -> str:
    """A length of time in the active language, to the second under an hour and to the minute
    from an hour on: ``"45 s"``, ``"1 min 5 s"``, ``"2 h 3 min"``; the zero parts in between
    are left out (``"1 min"``, ``"2 h"``)."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    units = {
        "h": lambda n: ngettext("%(count)d h", "%(count)d h", n),
        "min": lambda n: ngettext("%(count)d min", "%(count)d min", n),
        "s": lambda n: ngettext("%(count)d s", "%(count)d s", n),
    }
    shown = (("h", hours), ("min", minutes)) if hours else (("min", minutes), ("s", secs))
    parts = [units[unit](n) % {"count": n} for unit, n in shown if n]
    return " ".join(parts) or units["s"](0) % {"count": 0}


class SyncRunHour(models.Model):
    """Runs per started hour (UTC) and outcome that are no longer stored as runs.

    Runs are pruned to the newest ``KEEP_RUNS`` per mailbox — at a short interval less than a
    day — and the Status tab charts a week. A pruned run is folded in here as it is deleted
    (``engine.runs.prune_runs``), so the chart counts every run exactly once: a stored run, or
    its hour's count. Rows older than :data:`HOURS_KEPT` are dropped. Counted per UTC hour, a
    pruned run shows in the viewer's hour that its UTC hour starts in: exact for whole-hour
    offsets; in a half-hour zone (India) it may sit one bar early.
    """

    HOURS_KEPT = 8 * 24

    hour = models.DateTimeField()  # the start of the UTC hour the runs started in
    outcome = models.CharField(max_length=20)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "outcome"], name="sync_run_hour_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} UTC {self.outcome}: {self.runs}"


class SyncLogEntry(models.Model):
    """A per-item error or conflict of one run (the run itself carries whole-run errors)."""

    class Level(models.TextChoices):
        ERROR = "error", _("Error")
        CONFLICT = "conflict", _("Conflict")

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="entries")
    level = models.CharField(max_length=10, choices=Level.choices)
    kind = models.CharField(max_length=20, blank=True)
    psa_key = models.CharField(max_length=100, blank=True)
    exchange_id = models.CharField(max_length=1024, blank=True)
    message = models.TextField()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = _("sync log entries")

    def __str__(self) -> str:
        return f"{self.level} {self.psa_key}: {self.message[:60]}"


class SyncRunItem(models.Model):
    """One item a run touched: written on one side, linked, found in conflict or failed.

    The run's page lists them and each PSA item's page shows its history from them. Rows are
    written in bulk with the page they belong to (same transaction as its links), go with their
    run (runs are pruned to the newest few per mailbox) and are capped per run
    (``exchange_ext.engine.runs.ITEMS_PER_RUN``; the rest is counted in
    ``SyncRun.items_omitted``). ``psa_id`` is null when the PSA item was never created (an
    import that failed). ``title`` is a snapshot, so a deleted item still reads by its name.
    """

    class Action(models.TextChoices):
        CREATED = "created", _("Created")
        UPDATED = "updated", _("Updated")
        DELETED = "deleted", _("Deleted")
        LINKED = "linked", _("Linked to its existing copy")
        EXCHANGE_DELETED = "exchange_deleted", _("Deleted in Exchange, kept in the PSA")
        UNLINKED = "unlinked", _("Unlinked")
        CONFLICT = "conflict", _("Conflict")
        FAILED = "failed", _("Failed")

    class Side(models.TextChoices):
        PSA = "psa", _("PSA")
        EXCHANGE = "exchange", _("Exchange")
        NONE = "", _("Both")

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=20)
    psa_id = models.BigIntegerField(null=True, blank=True)
    side = models.CharField(max_length=10, choices=Side.choices, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    title = models.CharField(max_length=200, blank=True)
    # What changed ("times", "details") or, for a conflict or a failure, why (short).
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["kind", "psa_id"], name="sync_run_item_psa_item")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.kind}:{self.psa_id} {self.side} {self.action}"

    @property
    def is_problem(self) -> bool:
        return self.action in (self.Action.CONFLICT, self.Action.FAILED)


class ServerOutage(models.Model):
    """A server-wide outage: many resources failing to reach Exchange at once
    (docs/sync-rules.md, "Notifications").

    While one is open (``ended_at`` null), resources that fail to reach the server are covered
    by its single email instead of one email each.
    """

    started_at = models.DateTimeField()
    last_notified_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    affected = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"outage since {self.started_at:%Y-%m-%d %H:%M}"


class GraphSubscription(models.Model):
    """A Microsoft Graph change-notification subscription of one mailbox's events or contacts
    (docs/sync-rules.md, "Push"; SPEC §4.3), kept in step by :mod:`exchange_ext.jobs.push`.

    ``client_state`` is the per-subscription secret Graph repeats in every notification; a
    notification whose ``clientState`` does not match is refused. A notification only queues
    a prompt sync: losing one delays a change to the next polling slot, no more. A row without
    ``subscription_id`` is a subscription Graph refused: ``error`` says why and ``retry_at``
    when the next attempt is due.
    """

    class Resource(models.TextChoices):
        EVENTS = "events", _("Calendar")
        CONTACTS = "contacts", _("Contacts")

    mailbox_settings = models.ForeignKey(
        MailboxSettings, on_delete=models.CASCADE, related_name="graph_subscriptions"
    )
    resource = models.CharField(max_length=20, choices=Resource.choices)
    # The mailbox address the subscription watches: a changed address (a mailbox move) means a
    # new subscription for the new address.
    address = models.EmailField()
    subscription_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    client_state = EncryptedSecretField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    last_notification_at = models.DateTimeField(null=True, blank=True)
    # Graph asked for it (lifecycle ``reauthorizationRequired``): renew before the due date.
    needs_renewal = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_settings", "resource"], name="graph_subscription_per_resource"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource} of {self.address}"


class ListenerHeartbeat(models.Model):
    """What a running ``manage.py exchange_listen`` last reported (one row per shard), for the
    Status tab: it holds EWS streaming subscriptions (exchange_ext/jobs/ews_listener.py)."""

    name = models.CharField(max_length=50, unique=True)  # "ews" or "ews 2/4" (a shard)
    beat_at = models.DateTimeField()
    wanted = models.PositiveIntegerField(default=0)  # mailboxes it should hold
    subscribed = models.PositiveIntegerField(default=0)
    streams = models.PositiveIntegerField(default=0)  # open GetStreamingEvents connections
    last_event_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)  # the latest failure, "" when all is well

    def __str__(self) -> str:
        return f"listener {self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
