"""Admin › Extensions & Integrations: the index of pages extensions registered."""

from django.urls import path

from psa.extensions import views

urlpatterns = [path("", views.extension_index, name="extensions")]
