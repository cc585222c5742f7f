"""Registries of profile tabs and "Extensions & Integrations" admin pages.

Profile tabs — the contract for an extension adding a tab to My › Profile:

1. In its ``AppConfig.ready()``, register it::

       register_profile_tab(ProfileTab(slug="exchange", label="MS Exchange",
                                       url_name="exchange_ext:profile", order=50))

   ``url_name`` is reversed without arguments; ``is_visible(user)`` hides the tab from users it
   does not concern. The PSA's own "General" tab has slug ``general``, order 0, at ``/profile/``.
2. Its view checks its own permissions (a user only ever sees their own profile) and renders a
   template that ``{% extends "resources/profile_base.html" %}``, fills
   ``{% block profile_content %}`` and passes ``active_tab`` (its slug) in the context. The base
   draws the tab strip (``templates/_tabs.html``, via the ``profile_tab_strip``
   tag of ``psa_nav``) from :func:`profile_tabs_for` with that tab highlighted.

Extension pages appear on ``/extensions/`` (url name ``extensions``) for users holding their
``permission``; the "Extensions" navigation entry shows only when there is at least one.

Item panels — an extension's block on an appointment, service call, to-do or contact page
(e.g. its sync state): register an :class:`ItemPanel` whose ``render(request, kind, item)``
returns safe HTML, ``""`` when the user may see nothing of it; the PSA's templates draw them with
``{% load psa_item_panels %}{% item_panels "appointment" appointment %}``. Kinds:
``appointment``, ``service_call``, ``todo``, ``contact``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model
from django.http import HttpRequest

User = AbstractBaseUser | AnonymousUser


def _always(user: User) -> bool:
    return True


@dataclass(frozen=True)
class ProfileTab:
    """A tab on My › Profile. ``url_name`` is reversed without arguments."""

    slug: str
    label: str
    url_name: str
    order: int = 100
    is_visible: Callable[[User], bool] = _always


@dataclass(frozen=True)
class ExtensionPage:
    """An entry under Admin › Extensions & Integrations, grouped by ``group``."""

    slug: str
    label: str
    group: str
    url_name: str
    permission: str
    description: str = ""


@dataclass(frozen=True)
class ItemPanel:
    """A block an extension adds to a PSA item's page; ``render`` checks its own permissions."""

    slug: str
    render: Callable[[HttpRequest, str, Model], str]
    order: int = 100


_profile_tabs: dict[str, ProfileTab] = {}
_extension_pages: dict[str, ExtensionPage] = {}
_item_panels: dict[str, ItemPanel] = {}


def register_profile_tab(tab: ProfileTab) -> None:
    """Add (or replace, by slug) a profile tab. Call from ``AppConfig.ready()``."""
    _profile_tabs[tab.slug] = tab


def register_extension_page(page: ExtensionPage) -> None:
    """Add (or replace, by slug) an extension's admin page. Call from ``AppConfig.ready()``."""
    _extension_pages[page.slug] = page


def profile_tabs_for(user: User) -> list[ProfileTab]:
    """The tabs ``user`` sees on their profile, in display order."""
    tabs = [tab for tab in _profile_tabs.values() if tab.is_visible(user)]
    return sorted(tabs, key=lambda tab: (tab.order, tab.label))


def extension_pages_for(user: User) -> list[ExtensionPage]:
    """The extension admin pages ``user`` holds the permission for, grouped then by label."""
    pages = [page for page in _extension_pages.values() if user.has_perm(page.permission)]
    return sorted(pages, key=lambda page: (page.group, page.label))


def register_item_panel(panel: ItemPanel) -> None:
    """Add (or replace, by slug) an item page's panel. Call from ``AppConfig.ready()``."""
    _item_panels[panel.slug] = panel


def item_panels() -> list[ItemPanel]:
    """The registered item panels, in display order."""
    return sorted(_item_panels.values(), key=lambda panel: (panel.order, panel.slug))
