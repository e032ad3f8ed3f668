from django.apps import apps
from django.contrib import admin
from django.urls import include, path

from dashboard.urls import account_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include(account_urlpatterns)),
    path("", include("collectors.urls")),
    path("", include("dashboard.urls")),
]

# The demo shop is a plug-in: its faults panel exists only where the demo app is installed
# (never in production, see settings.INSTALLED_APPS).
if apps.is_installed("demo"):
    urlpatterns.append(path("", include("demo.urls")))
