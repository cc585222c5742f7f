"""Remove synced items (docs/sync-rules.md, "Removing synced items"): a mailbox's pending
removal request, its queued mark, and the sync-log trigger of removal runs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exchange_ext", "0007_held_deletions"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailboxsettings",
            name="removal_kinds",
            field=models.CharField(
                blank=True,
                help_text="Item types waiting for Remove synced items, comma-separated.",
                max_length=100,
                verbose_name="Item types to remove",
            ),
        ),
        migrations.AddField(
            model_name="mailboxsettings",
            name="removal_queued_at",
            field=models.DateTimeField(
                blank=True,
                help_text="A removal task is queued (at most one until it starts).",
                null=True,
                verbose_name="Removal queued",
            ),
        ),
        migrations.AddField(
            model_name="mailboxsettings",
            name="removal_requested_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="Removal requested"),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("manual", "Manual"),
                    ("scheduled", "Scheduled"),
                    ("sync_now", "Sync now"),
                    ("removal", "Remove synced items"),
                ],
                default="manual",
                max_length=20,
            ),
        ),
    ]
