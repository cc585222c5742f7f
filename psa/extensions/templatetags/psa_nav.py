"""Template tags of the base layout: active navigation entries and the profile tab strip."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from psa.extensions.registry import profile_tabs_for

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_current(context: template.Context, prefix: str) -> SafeString | str:
    """``aria-current="page"`` for the nav entry whose URL prefix the current page is under."""
    request = context.get("request")
    if request is not None and request.path.startswith(prefix):
        return mark_safe('aria-current="page"')  # a constant, nothing from the request
    return ""


@register.inclusion_tag("_tabs.html", takes_context=True)
def profile_tab_strip(context: template.Context) -> dict[str, Any]:
    """The profile tabs the current user sees; ``active_tab`` (a slug) marks the current one."""
    request = context["request"]
    tabs = profile_tabs_for(request.user)
    return {"tabs": tabs, "current": context.get("active_tab", ""), "label": _("Profile")}
