from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("collectors.urls")),
    path("", include("dashboard.urls")),
]

# The demo shop is a plug-in: its faults panel exists only where the demo app is installed
# (never in production, see settings.INSTALLED_APPS).
if apps.is_installed("demo"):
    urlpatterns.append(path("", include("demo.urls")))
