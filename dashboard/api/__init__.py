"""The JSON API (``/api/...``): one module per resource, wired in ``dashboard.api.urls``."""
