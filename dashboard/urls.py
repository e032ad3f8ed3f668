from django.urls import include, path

from dashboard.views import alerts, demo, flows, health, live, overview, services

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("flows/", flows.flows, name="flows"),
    path("flows/<int:flow_id>/", flows.flow, name="flow"),
    path("alerts/", alerts.alerts, name="alerts"),
    path("alerts/models/", alerts.flow_models, name="flow_models"),
    path("alerts/channels/<int:channel_id>/test", alerts.test_channel, name="test_channel"),
    path("live/", live.live, name="live"),
    path("services/", services.services, name="services"),
    path("demo/faults/", demo.demo_faults, name="demo_faults"),
    path("demo/faults/heal", demo.demo_heal, name="demo_heal"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/", include("dashboard.api.urls")),
]
