from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from dashboard.live_feed import on_flows_changed, on_observations_stored
        from tracing.signals import flows_changed, observations_stored

        flows_changed.connect(on_flows_changed, dispatch_uid="dashboard.live_feed")
        observations_stored.connect(on_observations_stored, dispatch_uid="dashboard.live_feed.stored")

        from django.contrib.auth.signals import user_logged_out

        from alerts.signals import alerts_changed
        from dashboard.live_feed import on_alerts_changed, on_logged_out

        alerts_changed.connect(on_alerts_changed, dispatch_uid="dashboard.live_feed.alerts")
        user_logged_out.connect(on_logged_out, dispatch_uid="dashboard.live_feed.logged_out")
