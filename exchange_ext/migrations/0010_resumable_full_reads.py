"""Resumable full reads (docs/sync-rules.md, "Scheduling, leases and budgets"): the Exchange
ids a full read split across runs has listed so far, and when that read began."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exchange_ext", "0009_reidentification_and_mailbox_moves"),
    ]

    operations = [
        migrations.AddField(
            model_name="foldersyncstate",
            name="full_read_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="FullReadSeen",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("folder", models.CharField(max_length=50)),
                ("exchange_id", models.CharField(max_length=512)),
                (
                    "mailbox_settings",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="full_read_seen",
                        to="exchange_ext.mailboxsettings",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("mailbox_settings", "folder", "exchange_id"),
                        name="full_read_seen_unique",
                    )
                ],
            },
        ),
    ]
