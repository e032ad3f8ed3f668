"""The demo shop is a plug-in: installed outside production, and only then on the overview."""

from __future__ import annotations

import pytest
from django.test import override_settings

from demo.fault_settings import register_services
from tests.foundation.test_settings import PRODUCTION, _manage
from tests.tracing.factories import checkout_flow


@pytest.mark.django_db
def test_the_overview_shows_the_faults_panel_only_where_the_demo_is_installed(admin_client, settings):
    checkout_flow()
    register_services(("checkout", "rewards"), reset=True)
    assert 'id="demo-faults"' in admin_client.get("/").content.decode()

    without_demo = [app for app in settings.INSTALLED_APPS if app != "demo"]
    with override_settings(INSTALLED_APPS=without_demo):
        page = admin_client.get("/").content.decode()
    assert "Recent flows" in page
    assert 'id="demo-faults"' not in page


def test_production_leaves_the_demo_out_its_urls_and_its_start(tmp_path):
    code = (
        "from django.apps import apps; from django.conf import settings; from django.urls import Resolver404, resolve\n"
        "try:\n    resolve('/demo/faults/'); routed = True\nexcept Resolver404:\n    routed = False\n"
        "print(apps.is_installed('demo'), routed, settings.DEMO)"
    )
    result = _manage("shell", "--no-imports", "-c", code, env={**PRODUCTION, "DEMO": "1", "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.stdout.split() == ["False", "False", "False"], result.stderr


def test_development_installs_the_demo_and_routes_its_panel(tmp_path):
    code = (
        "from django.apps import apps; from django.urls import reverse\nprint(apps.is_installed('demo'), reverse('demo:faults'))"
    )
    result = _manage("shell", "--no-imports", "-c", code, env={"CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.stdout.split() == ["True", "/demo/faults/"], result.stderr


def test_serve_refuses_the_demo_where_it_is_not_installed(tmp_path):
    result = _manage("serve", "--demo", "--port", "0", env={**PRODUCTION, "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "--demo needs the demo app" in result.stderr
