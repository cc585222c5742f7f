"""The CRM directory, mounted at /crm/."""

from __future__ import annotations

from django.urls import path

from psa.crm import views

app_name = "crm"
urlpatterns = [
    path("accounts/", views.account_list, name="account_list"),
    path("accounts/<int:pk>/", views.account_detail, name="account_detail"),
    path("contacts/", views.contact_list, name="contact_list"),
    path("contacts/<int:pk>/", views.contact_detail, name="contact_detail"),
]
