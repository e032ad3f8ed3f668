"""WebSocket routes (``/ws/...``); the ASGI app wraps them in origin and session checks."""

from django.urls import path

from dashboard import consumers

websocket_urlpatterns: list = [
    path("ws/stream/", consumers.StreamConsumer.as_asgi()),
    path("ws/flows/<int:flow_id>/", consumers.FlowConsumer.as_asgi()),
    path("ws/topology/", consumers.TopologyConsumer.as_asgi()),
    path("ws/alerts/", consumers.AlertsConsumer.as_asgi()),
]
