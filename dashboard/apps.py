from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from dashboard.live_feed import on_flows_changed, on_observations_stored
        from tracing.signals import flows_changed, observations_stored

        flows_changed.connect(on_flows_changed, dispatch_uid="dashboard.live_feed")
        observations_stored.connect(on_observations_stored, dispatch_uid="dashboard.live_feed.stored")

        from alerts.signals import alerts_changed
        from dashboard.alerts_live import publish_alert_changes

        alerts_changed.connect(publish_alert_changes, dispatch_uid="dashboard.alerts_live")
