"""Which rows the demo loader generated, so ``load_demo --refresh-calendar`` can replace them.

The PSA's own models carry no "demo" flag on purpose: the demo is not a product feature. A
generic (content type, id) record is enough to find and delete what the loader made, and
nothing else — items users create during a demo are never touched.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import models


class DemoItem(models.Model):
    """One calendar item (appointment, service call, to-do) created by ``load_demo``."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["content_type", "object_id"], name="demo_item_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.content_type.model} #{self.object_id}"
