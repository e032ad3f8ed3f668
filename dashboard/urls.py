from django.contrib.auth import views as auth_views
from django.urls import URLPattern, include, path

from dashboard.views import alerts, contracts, correlation_health, flows, health, live, login, overview, services

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
    path("services/coupling/", services.coupling, name="coupling"),
    path("services/contracts/", contracts.contracts, name="contracts"),
    path("services/health/", correlation_health.correlation_health, name="correlation_health"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/", include("dashboard.api.urls")),
]

# Outside the ``dashboard`` namespace (``LOGIN_URL = "login"``); the project's urls include them.
account_urlpatterns: list[URLPattern] = [
    path("login/", login.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
