"""The technician's My › Profile › MS Exchange tab, mounted at /profile/exchange/.

The path is a contract: the README ("Configuring the MS Exchange extension") and the setup email
name it.
"""

from __future__ import annotations

from django.urls import path

from exchange_ext.web import history, views

app_name = "exchange_ext_profile"
urlpatterns = [
    path("", views.profile_exchange, name="profile_exchange"),
    path("test/", views.profile_exchange_test, name="profile_exchange_test"),
    path("sync/", views.profile_exchange_sync, name="profile_exchange_sync"),
    path("runs/<int:run_id>/", history.profile_run_items, name="profile_run_items"),
    path("progress/", views.profile_exchange_progress, name="profile_exchange_progress"),
]
