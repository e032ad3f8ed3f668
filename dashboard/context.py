from __future__ import annotations

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

NAVIGATION = [
    ("overview", "Overview", "dashboard:overview"),
    ("flows", "Flows", "dashboard:flows"),
    ("live", "Live", "dashboard:live"),
    ("alerts", "Alerts", "dashboard:alerts"),
    ("services", "Services", "dashboard:services"),
]


def _nav_items() -> list[tuple[str, str, str]]:
    items = []
    for section, label, url_name in NAVIGATION:
        try:
            items.append((section, label, reverse(url_name)))
        except NoReverseMatch:
            continue
    return items


def navigation(request: HttpRequest) -> dict[str, object]:
    section = request.path.strip("/").split("/")[0] or "overview"
    return {"navigation": _nav_items(), "nav_section": section}
