from __future__ import annotations

from typing import Any

from django import template

from demo.fault_settings import panel_state

register = template.Library()


@register.simple_tag
def demo_panel_state() -> dict[str, Any]:
    return panel_state()
