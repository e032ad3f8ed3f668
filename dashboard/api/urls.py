"""Routes of the JSON API, included under ``/api/`` by ``dashboard.urls``."""

from django.urls import path

from dashboard.api import alerts, contracts, correlation_health, export, flows, schema, topology

app_name = "api"

urlpatterns = [
    path("flows", flows.flows, name="flows"),
    path("flows/export.ocel.json", export.ocel_export, name="flows-ocel"),
    path("flows/<str:flow_id>", flows.flow, name="flow"),
    path("schema", schema.schema, name="schema"),
    path("topology", topology.topology, name="topology"),
    path("alerts", alerts.alerts, name="alerts"),
    path("alerts/groups", alerts.groups, name="alert-groups"),
    path("alerts/<int:alert_id>/ack", alerts.acknowledge, name="alert-ack"),
    path("flow-models", alerts.flow_models, name="flow-models"),
    path("contracts", contracts.contracts, name="contracts"),
    path("correlation-health", correlation_health.correlation_health, name="correlation-health"),
]
