"""``{% item_panels kind item %}``: the extensions' blocks on a PSA item's page."""

from __future__ import annotations

from django import template
from django.db.models import Model
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from psa.extensions.registry import item_panels as registered_panels

register = template.Library()


@register.simple_tag(takes_context=True)
def item_panels(context: template.Context, kind: str, item: Model) -> SafeString:
    """Every registered panel's HTML for ``item`` (each checks the viewer's rights itself)."""
    request = context.get("request")
    if request is None or item is None or item.pk is None:
        return SafeString("")
    parts = [panel.render(request, kind, item) for panel in registered_panels()]
    return format_html_join("", "{}", ((part,) for part in parts if part))
