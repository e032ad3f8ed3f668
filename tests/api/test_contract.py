"""Every response the OpenAPI document describes, checked against it: each documented endpoint and
status is called on flows and alerts built by the real correlation and stuck scan, and its JSON
body must match the generated schema, with no key the schema does not name."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from django.test import Client, override_settings
from jsonschema import Draft202012Validator, FormatChecker

from alerts.models import Alert, DeclaredFlow
from alerts.services import scan_stuck_flows
from alerts.status import ShownStatus
from dashboard.selectors import forget_contract_rows
from tests.alerts.test_stuck_flows import NOW, learned_history, order_without_rewards
from tests.tracing.factories import checkout_flow
from tracing.contracts import KINDS as DRIFT_KINDS
from tracing.contracts import forget_loaded_documents
from tracing.models import Edge, Observation
from tracing.records import Status as ObservationStatus
from tracing.topology import WINDOWS

pytestmark = pytest.mark.django_db
DEMO_DOCUMENTS = Path(__file__).parents[2] / "demo" / "asyncapi" / "*.yaml"


@dataclass(frozen=True)
class World:
    admin: Client
    anonymous: Client
    csrf_checked: Client  # a logged-in browser that does not send its CSRF token
    stuck_flow_id: int
    alert_id: int
    resolved_alert_id: int


@pytest.fixture
def world(settings, admin_client, admin_user) -> World:  # type: ignore[no-untyped-def]
    settings.FLOWS_FILE = None
    settings.MODEL_MIN_FLOWS = 5
    settings.QUIET_SECONDS = 120
    settings.STUCK_FLOOR_SECONDS = 30
    learned_history()
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=5
    )
    stuck, other = order_without_rewards(), order_without_rewards()
    checkout_flow(failing=True)
    scan_stuck_flows(NOW)
    alert_id = Alert.objects.get(flow_id=stuck.flow().id).id
    resolved = Alert.objects.get(flow_id=other.flow().id)
    Alert.objects.filter(id=resolved.id).update(state=Alert.State.RESOLVED, resolved_at=NOW)
    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(admin_user)
    return World(admin_client, Client(), csrf_checked, stuck.flow().id, alert_id, resolved.id)


Call = Callable[[World], Any]  # the test client's response
CALLS: dict[tuple[str, str, int], Call] = {
    ("get", "/api/flows", 200): lambda w: w.admin.get("/api/flows"),
    ("get", "/api/flows", 400): lambda w: w.admin.get("/api/flows", {"status": "sleeping"}),
    ("get", "/api/flows", 401): lambda w: w.anonymous.get("/api/flows"),
    ("get", "/api/flows/{id}", 200): lambda w: w.admin.get(f"/api/flows/{w.stuck_flow_id}"),
    ("get", "/api/flows/{id}", 401): lambda w: w.anonymous.get(f"/api/flows/{w.stuck_flow_id}"),
    ("get", "/api/flows/{id}", 404): lambda w: w.admin.get("/api/flows/987654"),
    ("get", "/api/topology", 200): lambda w: w.admin.get("/api/topology", {"window": "24h"}),
    ("get", "/api/topology", 400): lambda w: w.admin.get("/api/topology", {"window": "forever"}),
    ("get", "/api/topology", 401): lambda w: w.anonymous.get("/api/topology"),
    ("get", "/api/alerts", 200): lambda w: w.admin.get("/api/alerts"),
    ("get", "/api/alerts", 400): lambda w: w.admin.get("/api/alerts", {"state": "closed"}),
    ("get", "/api/alerts", 401): lambda w: w.anonymous.get("/api/alerts"),
    ("get", "/api/alerts/groups", 200): lambda w: w.admin.get("/api/alerts/groups"),
    ("get", "/api/alerts/groups", 401): lambda w: w.anonymous.get("/api/alerts/groups"),
    ("post", "/api/alerts/{id}/ack", 200): lambda w: w.admin.post(f"/api/alerts/{w.alert_id}/ack"),
    ("post", "/api/alerts/{id}/ack", 401): lambda w: w.anonymous.post(f"/api/alerts/{w.alert_id}/ack"),
    ("post", "/api/alerts/{id}/ack", 403): lambda w: w.csrf_checked.post(f"/api/alerts/{w.alert_id}/ack"),
    ("post", "/api/alerts/{id}/ack", 404): lambda w: w.admin.post("/api/alerts/999999/ack"),
    ("post", "/api/alerts/{id}/ack", 409): lambda w: w.admin.post(f"/api/alerts/{w.resolved_alert_id}/ack"),
    ("get", "/api/flow-models", 200): lambda w: w.admin.get("/api/flow-models"),
    ("get", "/api/flow-models", 401): lambda w: w.anonymous.get("/api/flow-models"),
    ("get", "/api/contracts", 200): lambda w: contracts_of_the_demo(w),
    ("get", "/api/contracts", 400): lambda w: w.admin.get("/api/contracts", {"kind": "broken"}),
    ("get", "/api/contracts", 401): lambda w: w.anonymous.get("/api/contracts"),
    ("get", "/api/flows/export.ocel.json", 200): lambda w: Streamed(w.admin.get("/api/flows/export.ocel.json")),
    ("get", "/api/flows/export.ocel.json", 400): lambda w: w.admin.get("/api/flows/export.ocel.json", {"limit": "5"}),
    ("get", "/api/flows/export.ocel.json", 401): lambda w: w.anonymous.get("/api/flows/export.ocel.json"),
    ("get", "/api/correlation-health", 200): lambda w: w.admin.get("/api/correlation-health", {"window": "24h"}),
    ("get", "/api/correlation-health", 400): lambda w: w.admin.get("/api/correlation-health", {"window": "forever"}),
    ("get", "/api/correlation-health", 401): lambda w: w.anonymous.get("/api/correlation-health"),
}


def contracts_of_the_demo(world: World) -> Any:
    """The drift of the demo shop's AsyncAPI documents against the world's flows."""
    with override_settings(ASYNCAPI_FILES=[str(DEMO_DOCUMENTS)]):
        forget_loaded_documents()
        forget_contract_rows()
        try:
            return world.admin.get("/api/contracts", {"window": "24h"})
        finally:
            forget_loaded_documents()


@dataclass(frozen=True)
class Streamed:
    """A streamed answer, read whole."""

    status_code: int
    content: bytes

    def __init__(self, response: Any) -> None:
        object.__setattr__(self, "status_code", response.status_code)
        object.__setattr__(self, "content", b"".join(response.streaming_content))

    def json(self) -> Any:
        return json.loads(self.content)


@pytest.fixture
def document(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return client.get("/api/schema").json()


def closed(schema: Any) -> Any:
    """The schema with every described object closed to keys it does not name, so an answer
    carrying an undocumented key fails as surely as one missing a documented key."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [closed(item) for item in schema]
    return schema


format_checker = FormatChecker()


@format_checker.checks("date-time", raises=ValueError)
def is_instant(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def response_validator(document: dict[str, Any], method: str, path: str, status: int) -> Draft202012Validator:
    content = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    root = {**content["schema"], "components": closed(copy.deepcopy(document["components"]))}
    return Draft202012Validator(root, format_checker=format_checker)


@pytest.mark.parametrize("call", sorted(CALLS), ids=lambda call: f"{call[0].upper()} {call[1]} {call[2]}")
def test_each_documented_response_matches_its_schema(world, document, call):
    *_, status = call
    response = CALLS[call](world)
    assert response.status_code == status, response.content[:300]
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in response_validator(document, *call).iter_errors(response.json())
    ]
    assert errors == []


def test_every_documented_response_is_checked(document):
    documented = {
        (method, path, int(status))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status in operation["responses"]
    }
    assert documented == set(CALLS)


def test_the_checked_answers_hold_every_optional_part_of_their_shapes(world):
    """So that the schema checks above see spans and events, a stuck flow's missing steps,
    failed flows, declared expectations and acknowledged alerts, not only empty lists."""
    detail = world.admin.get(f"/api/flows/{world.stuck_flow_id}").json()
    assert {node["kind"] for node in detail["nodes"]} == {"span", "event"}
    assert detail["status"] == "stuck" and detail["missing"][0]["step"] == "PointsCreated"
    assert {flow["status"] for flow in world.admin.get("/api/flows").json()["results"]} >= {"stuck", "failed", "running"}
    assert world.admin.get("/api/topology", {"window": "24h"}).json()["edges"]
    [model] = world.admin.get("/api/flow-models").json()["results"]
    assert model["declared"] and model["graph"]["transitions"]
    assert world.admin.post(f"/api/alerts/{world.alert_id}/ack").json()["acknowledged_at"] is not None
    assert {row["kind"] for row in contracts_of_the_demo(world).json()["results"]} >= {"undeclared", "declared_not_observed"}
    ocel = Streamed(world.admin.get("/api/flows/export.ocel.json")).json()
    assert ocel["events"] and ocel["objects"] and ocel["objectTypes"] and ocel["eventTypes"]


def test_the_schema_enums_are_the_models_choices(document):
    schemas = document["components"]["schemas"]

    def enum(schema_name: str, field: str) -> list[str]:
        return schemas[schema_name]["properties"][field]["enum"]

    def parameter_enum(path: str, name: str) -> list[str]:
        [parameter] = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
        return parameter["schema"]["enum"]

    assert enum("FlowSummary", "status") == parameter_enum("/api/flows", "status") == ShownStatus.values
    assert enum("FlowNode", "kind") == Observation.Kind.values
    assert enum("FlowNode", "status") == list(get_args(ObservationStatus))
    assert enum("FlowEdge", "kind") == Edge.Kind.values
    assert enum("Alert", "state") == parameter_enum("/api/alerts", "state") == Alert.State.values
    assert enum("Topology", "window") == parameter_enum("/api/topology", "window") == list(WINDOWS)
    assert enum("ContractDrift", "kind") == parameter_enum("/api/contracts", "kind") == list(DRIFT_KINDS)
    assert enum("CorrelationHealth", "window") == parameter_enum("/api/correlation-health", "window") == list(WINDOWS)


def test_each_declared_shape_is_a_valid_json_schema(document):
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
