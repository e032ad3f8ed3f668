from django.urls import path

from collectors import views

app_name = "collectors"

urlpatterns = [
    path("v1/traces", views.traces, name="traces"),
    path("v1/logs", views.logs, name="logs"),
    path("v1/events", views.events, name="events"),
]
