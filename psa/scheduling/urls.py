"""The calendar, mounted at /calendar/. Names are global (``calendar`` is the home page)."""

from __future__ import annotations

from django.urls import path

from psa.scheduling import views

urlpatterns = [
    path("", views.agenda, name="calendar"),
    path("appointments/new/", views.appointment_create, name="appointment_create"),
    path("appointments/<int:pk>/", views.appointment_edit, name="appointment_edit"),
    path("appointments/<int:pk>/delete/", views.appointment_delete, name="appointment_delete"),
    path("todos/new/", views.todo_create, name="todo_create"),
    path("todos/<int:pk>/", views.todo_edit, name="todo_edit"),
    path("todos/<int:pk>/delete/", views.todo_delete, name="todo_delete"),
    path("service-calls/new/", views.service_call_create, name="service_call_create"),
    path("service-calls/<int:pk>/", views.service_call_edit, name="service_call_edit"),
]
