"""URLs of the extension's admin pages, mounted at /extensions/exchange/.

The paths are a contract: the README ("Configuring the MS Exchange extension") names them, and
links in emails already sent must keep working.
"""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from exchange_ext.web import graph_notifications, held_views, history, preview_views, removal, views

app_name = "exchange_ext"
urlpatterns = [
    path("", RedirectView.as_view(pattern_name="exchange_ext:general"), name="index"),
    path("general/", views.general, name="general"),
    path("synchronization/", views.synchronization, name="synchronization"),
    path("resources/", views.resources, name="resources"),
    path("status/", views.status, name="status"),
    path("resources/<int:resource_id>/", views.resource_settings, name="resource_settings"),
    path(
        "resources/<int:resource_id>/test/",
        views.resource_settings_test,
        name="resource_settings_test",
    ),
    path(
        "resources/<int:resource_id>/sync/",
        views.resource_settings_sync,
        name="resource_settings_sync",
    ),
    path(
        "resources/<int:resource_id>/progress/",
        views.resource_settings_progress,
        name="resource_settings_progress",
    ),
    path(
        "resources/<int:resource_id>/held/confirm/",
        held_views.confirm_deletions,
        name="confirm_deletions",
    ),
    path(
        "resources/<int:resource_id>/held/restore/",
        held_views.restore_deletions,
        name="restore_deletions",
    ),
    path(
        "resources/<int:resource_id>/preview/",
        preview_views.preview_next_sync,
        name="preview_next_sync",
    ),
    path("runs/<int:run_id>/", history.run_items, name="run_items"),
    # Microsoft Graph posts change notifications here (SPEC §4.3 and §9: a contract).
    path(
        "notifications/graph/",
        graph_notifications.graph_notifications,
        name="graph_notifications",
    ),
    path(
        "resources/<int:resource_id>/remove/",
        removal.remove_synced_items,
        name="remove_synced_items",
    ),
]
