"""Django's admin app with the throttled log-in: INSTALLED_APPS names this instead of
``django.contrib.admin``. A module of its own, because an app config module is imported before
any model can be (the site's module imports the auth forms)."""

from django.contrib.admin.apps import AdminConfig


class ChoreoscopeAdminConfig(AdminConfig):
    default_site = "dashboard.admin_site.ChoreoscopeAdminSite"
