"""The mailbox a sync opens is stored, lower-cased and unique (docs/security.md, "Whose mailbox").

Until now a blank ``mailbox`` meant "the resource's PSA email, whatever it is now". Enabled rows
get that address stored now. Where two rows would sync the same mailbox, the first enabled keeps
it; the others are stopped with the reason, for an administrator to decide.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.models import Q


def store_mailboxes(apps: Any, schema_editor: Any) -> None:
    settings = apps.get_model("exchange_ext", "MailboxSettings")
    taken: dict[str, Any] = {}
    rows = settings.objects.select_related("resource").order_by("-sync_enabled", "enabled_at", "pk")
    for row in rows:
        address = (row.mailbox or (row.resource.email if row.sync_enabled else "")).strip().lower()
        owner = taken.get(address)
        if address and owner is not None:
            row.mailbox, row.sync_enabled, row.status = "", False, "disabled"
            row.last_error = (
                f"The mailbox {address} also belonged to {owner.resource.first_name} "
                f"{owner.resource.last_name}; an administrator sets this resource's mailbox on "
                "its page and enables it again."
            )
        else:
            row.mailbox = address
            if address:
                taken[address] = row
        row.save(update_fields=["mailbox", "sync_enabled", "status", "last_error"])


class Migration(migrations.Migration):
    dependencies = [("exchange_ext", "0005_public_contacts_folder")]

    operations = [
        migrations.AlterField(
            model_name="mailboxsettings",
            name="mailbox",
            field=models.EmailField(
                blank=True,
                help_text="Set when the resource is enabled; only an administrator changes it.",
                max_length=254,
                verbose_name="Mailbox address",
            ),
        ),
        migrations.RunPython(store_mailboxes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="mailboxsettings",
            constraint=models.UniqueConstraint(
                condition=~Q(mailbox=""),
                fields=("mailbox",),
                name="mailbox_settings_mailbox_unique",
            ),
        ),
    ]
