"""My › Profile, mounted at /profile/. Extensions mount their tabs under it themselves."""

from __future__ import annotations

from django.urls import path

from psa.resources import views

urlpatterns = [path("", views.profile, name="profile")]
