"""Imports point one way between the apps, so the direction cannot quietly erode.

The rule, read from every module's imports with ``ast`` (module-level, function-local and
``TYPE_CHECKING`` imports alike, relative imports resolved, and ``import_module("…")`` with a
literal name):

- ``tracing`` is the domain and imports none of the other apps.
- ``collectors → tracing``: ingestion stores what it decodes; ``collectors → tokens`` checks
  ingest tokens.
- ``alerts → tracing``: stuck detection watches flows.
- ``dashboard → tracing``, ``dashboard → alerts``: pages, API and sockets show both;
  ``dashboard → tokens`` checks read tokens.
- ``tokens`` imports no other app.
- ``demo`` is a plug-in that production does not install: no app imports it, and it imports no
  app (it feeds Choreoscope over the wire, as any shop would).
- Every app may import the project package ``choreoscope`` (settings helpers, the metrics
  registry, the scheduler). The project package imports no app's models or logic: only an app's
  wiring modules (``urls``, ``routing``), and apps by name as strings in settings and urls.

Inside an app, the same direction holds between its layers: a view module is imported only by
urls and other views (a view is an edge, not a library), and ``selectors`` (reads) import no
``services`` (writes).

A reach "up" is answered by publishing a signal from the lower app instead (see
``tracing/signals.py``), not by importing the upper one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PROJECT = "choreoscope"
MAY_IMPORT: dict[str, frozenset[str]] = {
    "tracing": frozenset(),
    "tokens": frozenset(),
    "collectors": frozenset({"tracing", "tokens"}),
    "alerts": frozenset({"tracing"}),
    "dashboard": frozenset({"tracing", "alerts", "tokens"}),
    "demo": frozenset(),
}
APPS = frozenset(MAY_IMPORT)
PROJECT_MAY_IMPORT_FROM_APPS = frozenset({"urls", "routing"})


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}"


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """``from ..x import y`` inside ``module`` → the absolute module name it means."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imported_modules(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every name that ``source`` imports, with its line; ``from a import b`` gives ``a.b``
    (``b`` may be a submodule, such as ``routing``, or a name in ``a``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _allowed(importer: str, imported: str) -> bool:
    source_app = importer.split(".")[0]
    target_app, *inside = imported.split(".")
    if target_app == source_app or target_app not in APPS | {PROJECT}:
        return True  # within one package, or the standard library and third parties
    if source_app == PROJECT:
        return bool(inside) and inside[0] in PROJECT_MAY_IMPORT_FROM_APPS
    if target_app == PROJECT:
        return True
    return target_app in MAY_IMPORT.get(source_app, frozenset())


def _layer_allowed(importer: str, imported: str) -> bool:
    """Within one app: views are imported only by urls and views; selectors import no services."""
    importer_parts, imported_parts = importer.split("."), imported.split(".")
    if importer_parts[0] != imported_parts[0]:
        return True
    if "views" in imported_parts[1:2]:
        return importer_parts[-1] == "urls" or "views" in importer_parts[1:]
    return not (importer_parts[-1] == "selectors" and "services" in imported_parts[1:2])


def upward_imports(module: str, source: str, is_package: bool = False) -> list[Violation]:
    """The imports of ``module`` (given as its source text) that break the direction."""
    found: dict[tuple[int, str], Violation] = {}
    for line, imported in imported_modules(module, source, is_package):
        if not (_allowed(module, imported) and _layer_allowed(module, imported)):
            found.setdefault((line, imported.split(".")[0]), Violation(module, line, imported))
    return sorted(found.values(), key=lambda v: (v.line, v.imported))


def project_modules() -> Iterator[tuple[str, Path]]:
    for package in sorted(APPS | {PROJECT}):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_imports_against_the_direction_of_the_apps():
    violations = [
        str(violation)
        for module, path in project_modules()
        for violation in upward_imports(module, path.read_text(), is_package=path.name == "__init__.py")
    ]
    assert violations == [], "imports against the direction (see this test's docstring):\n" + "\n".join(violations)


def test_every_app_is_scanned():
    scanned = {module.split(".")[0] for module, _ in project_modules()}
    assert scanned == APPS | {PROJECT}


def test_an_import_of_dashboard_inside_tracing_is_reported():
    source = "from dashboard import live_feed\n"
    assert [str(v) for v in upward_imports("tracing.services", source)] == ["tracing.services:1 imports dashboard.live_feed"]


def test_a_function_local_upward_import_is_reported():
    source = "def publish():\n    from alerts.services import on_flows_changed\n    import collectors.otlp\n"
    assert [str(v) for v in upward_imports("tracing.store", source)] == [
        "tracing.store:2 imports alerts.services.on_flows_changed",
        "tracing.store:3 imports collectors.otlp",
    ]


def test_a_relative_import_that_leaves_the_app_is_resolved_and_reported():
    assert upward_imports("tracing.views.flows", "from ...dashboard import views\n") != []
    assert upward_imports("tracing.views.flows", "from ..models import Flow\n") == []


def test_the_demo_is_imported_by_no_app():
    assert [str(v) for v in upward_imports("dashboard.views.overview", "from demo.fault_settings import panel_state\n")] == [
        "dashboard.views.overview:1 imports demo.fault_settings.panel_state"
    ]


def test_the_project_package_imports_app_wiring_but_no_models():
    assert upward_imports("choreoscope.asgi", "from dashboard.routing import websocket_urlpatterns\n") == []
    assert [str(v) for v in upward_imports("choreoscope.metrics", "from tracing.models import Flow\n")] == [
        "choreoscope.metrics:1 imports tracing.models.Flow"
    ]
    assert upward_imports("choreoscope.urls", "import_module('alerts.services')\n") != []


def test_a_view_imported_outside_urls_and_a_service_imported_by_selectors_are_reported():
    assert [str(v) for v in upward_imports("dashboard.live_feed", "from dashboard.views.flows import shape\n")] == [
        "dashboard.live_feed:1 imports dashboard.views.flows.shape"
    ]
    assert upward_imports("alerts.selectors", "from alerts.services import acknowledge\n") != []
    assert upward_imports("dashboard.urls", "from dashboard.views import flows\n") == []
    assert upward_imports("dashboard.views.alerts", "from dashboard.views.flows import shape\n") == []


def test_the_allowed_directions_pass():
    source = "from tracing.models import Flow\nfrom alerts.selectors import open_alerts\nfrom choreoscope.env import env_int\n"
    assert upward_imports("dashboard.views.alerts", source) == []
    assert upward_imports("collectors.ingestion", "from tracing.store import store_observations\n") == []
    assert upward_imports("alerts.services", "from dashboard import consumers\n") != []
