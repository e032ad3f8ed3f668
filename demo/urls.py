"""The faults panel's endpoints; ``choreoscope/urls.py`` includes them only when the demo is installed."""

from django.urls import path

from demo import views

app_name = "demo"

urlpatterns = [
    path("demo/faults/", views.faults, name="faults"),
    path("demo/faults/heal", views.heal, name="heal"),
]
