"""Re-identification and mailbox moves (docs/sync-rules.md, "Re-identification", "Mailbox
moves"): links keep the Exchange item's iCalendar UID and an occurrence's original start; a
mailbox keeps its previous address until a run has moved the items."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exchange_ext", "0008_remove_synced_items"),
    ]

    operations = [
        migrations.AddField(
            model_name="itemlink",
            name="ical_uid",
            field=models.CharField(blank=True, max_length=1024),
        ),
        migrations.AddField(
            model_name="itemlink",
            name="original_start",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="mailboxsettings",
            name="previous_mailbox",
            field=models.EmailField(
                blank=True,
                help_text="Set when the address changes; cleared once the next run moved the items.",
                max_length=254,
                verbose_name="Previous mailbox address",
            ),
        ),
    ]
