"""Declared contracts (AsyncAPI 3) against what runs: the parser, the declared map feeding the flow
definitions, and ``GET /api/contracts`` over traffic sent as CloudEvents over HTTP."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent
from django.core.exceptions import ImproperlyConfigured

from dashboard.selectors import forget_contract_rows
from tracing import contracts
from tracing.asyncapi import correlation_path, parse_asyncapi
from tracing.contracts import (
    DeclaredMap,
    DriftRow,
    ObservedTraffic,
    Tally,
    application_of,
    contract_drift,
    declared_applications,
    declared_flow_definitions,
    declared_map,
    forget_loaded_documents,
    merged_definitions,
    read_document_files,
)
from tracing.flowconfig import StepRef, flows_config, parse_flows_config
from tracing.services import correlate_pending_observations

CHECKOUT_DOCS = Path(__file__).parent / "asyncapi_checkout"
DEMO_DOCS = Path(__file__).parents[2] / "demo" / "asyncapi"
_orders = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_documents():  # type: ignore[no-untyped-def]
    forget_loaded_documents()
    forget_contract_rows()
    yield
    forget_loaded_documents()


# --- Parsing -----------------------------------------------------------------------------------


def test_it_reads_who_sends_and_receives_what_on_which_channel_through_refs():
    checkout = parse_asyncapi((CHECKOUT_DOCS / "checkout.json").read_text(), "checkout.json")
    assert checkout.service == "checkout"
    [sent] = checkout.sends
    assert (sent.name, sent.channel, sent.correlation_path) == ("OrderCreated", "shop.orders", "data.order_id")
    assert sent.payload_pointer == "/components/schemas/order"
    warehouse = parse_asyncapi((CHECKOUT_DOCS / "warehouse.yaml").read_text(), "warehouse.yaml")
    assert [(r.message.name, r.replies) for r in warehouse.receives] == [
        ("OrderCreated", ("ShipmentPrepared",)),
        ("ShipmentPrepared", ("ShipmentDispatched",)),
    ]
    assert {m.name for m in warehouse.sends} == {"ShipmentPrepared", "ShipmentDispatched"}


def test_a_correlation_id_location_becomes_a_key_path():
    assert correlation_path("$message.payload#/order_id") == "data.order_id"
    assert correlation_path("$message.payload#/order/id") == "data.order.id"
    assert correlation_path("$message.header#/correlationid") == "correlationid"
    assert correlation_path("$message.payload#") == ""
    assert correlation_path("order_id") == ""


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("asyncapi: 2.6.0\ninfo: {title: a, version: '1'}\nchannels: {}", "only AsyncAPI 3 documents"),
        ("asyncapi: 3.0.0\ninfo: {title: a}\n", "/info: 'version' is a required property"),
        (
            "asyncapi: 3.0.0\ninfo: {title: a, version: '1'}\n"
            "operations:\n  x: {action: publish, channel: {$ref: '#/channels/c'}}\n",
            "/operations/x",
        ),
        (
            "asyncapi: 3.0.0\ninfo: {title: a, version: '1'}\nchannels:\n  c: {messages: {m: {$ref: 'other.yaml#/m'}}}\n"
            "operations:\n  o: {action: send, channel: {$ref: '#/channels/c'}}\n",
            "only local $refs",
        ),
        (
            "asyncapi: 3.0.0\ninfo: {title: a, version: '1'}\n"
            "operations:\n  o: {action: send, channel: {$ref: '#/channels/nowhere'}}\n",
            "'#/channels/nowhere' points at nothing",
        ),
        ("asyncapi: [3.0.0\n", "line 2: not valid YAML or JSON"),
        ("- just a list\n", "expected an AsyncAPI document"),
    ],
)
def test_an_invalid_document_is_refused_naming_the_file_and_the_path(text, says):
    with pytest.raises(ImproperlyConfigured) as refused:
        parse_asyncapi(text, "shop/broken.yaml")
    assert str(refused.value).startswith("shop/broken.yaml")
    assert says in str(refused.value)


def test_the_demo_documents_are_valid_and_one_per_service():
    applications = read_document_files([str(DEMO_DOCS / "*.yaml")])
    assert sorted(app.service for app in applications) == ["checkout", "email", "fraud-check", "rewards", "warehouse"]


def test_two_documents_for_one_service_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text((CHECKOUT_DOCS / "rewards.yaml").read_text())
    (tmp_path / "b.yaml").write_text((CHECKOUT_DOCS / "rewards.yaml").read_text())
    with pytest.raises(ImproperlyConfigured, match="'rewards' is already described by"):
        read_document_files([str(tmp_path / "*.yaml")])


def test_a_name_matching_no_file_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="names no readable file"):
        read_document_files([str(tmp_path / "missing-*.yaml")])


# --- Feeding the flow definitions ---------------------------------------------------------------


def test_declared_receivers_become_expectations_and_correlation_ids_key_paths():
    applications = read_document_files([str(DEMO_DOCS / "*.yaml")])
    types = {flow_type.type: flow_type for flow_type in declared_flow_definitions(applications).types}
    assert set(types) == {"OrderCreated", "PointsExpired"}  # what nothing declared causes starts a flow
    order = types["OrderCreated"]
    assert order.type == "OrderCreated"
    assert order.start == frozenset({"OrderCreated"})
    assert order.key_paths == ("data.order_id",)
    expected = {(e.after.name, step.service, step.name, e.within_seconds) for e in order.expectations for step in e.steps}
    assert expected == {
        ("OrderCreated", "email", "EmailSent", 30.0),
        ("OrderCreated", "warehouse", "ShipmentPrepared", 30.0),
        ("OrderCreated", "rewards", "PointsCreated", 30.0),
        ("OrderCreated", "fraud-check", "FraudCleared", 30.0),
        ("ShipmentPrepared", "warehouse", "ShipmentDispatched", 30.0),
        ("ShipmentDispatched", "email", "DispatchNoticeSent", 30.0),
    }


def test_the_flow_definitions_file_wins_and_gains_only_what_it_lacks():
    written = parse_flows_config((DEMO_DOCS.parent / "flows.yaml").read_text())
    merged = merged_definitions(written, declared_flow_definitions(read_document_files([str(DEMO_DOCS / "*.yaml")])))
    order, points_expired = merged.types
    assert points_expired.type == "PointsExpired"
    assert order.type == "order" and order.end == frozenset({"DispatchNoticeSent"})
    steps = [(e.after.name, step) for e in order.expectations for step in e.steps]
    assert len(steps) == len(set(steps)) == 6  # the file's five, and fraud-check's reaction it lacked
    assert ("OrderCreated", StepRef("FraudCleared", "fraud-check")) in steps


@pytest.mark.django_db
def test_a_service_receiving_one_message_and_sending_one_reacts_with_it(settings):
    settings.ASYNCAPI_FILES = [str(CHECKOUT_DOCS / "*")]
    settings.FLOWS_FILE = None
    [order] = flows_config().types
    rewards = [e for e in order.expectations if e.steps[0].service == "rewards"]
    assert [(e.after.name, e.steps[0].name, e.within_seconds) for e in rewards] == [("OrderCreated", "PointsCreated", 45.0)]
    # email receives one message but sends two: which one answers it is not declared, so nothing is expected
    assert not [e for e in order.expectations if e.steps[0].service == "email"]


# --- Drift, the pure rules ------------------------------------------------------------------------


def test_each_kind_of_drift_names_the_party_at_fault():
    declared = DeclaredMap(
        sends={("checkout", "OrderCreated"): "orders", ("rewards", "PointsExpired"): "rewards"},
        receives={("email", "OrderCreated"): "orders", ("warehouse", "OrderCreated"): "orders"},
    )
    observed = ObservedTraffic(
        produced={("checkout", "OrderCreated"): Tally(10, 1), ("audit", "AuditLogged"): Tally(4, 2)},
        reactions={("checkout", "OrderCreated", "email"): Tally(10, 1), ("checkout", "OrderCreated", "fraud"): Tally(9, 3)},
        violations={("checkout", "OrderCreated", "email"): Tally(2, 5)},
    )
    assert contract_drift(declared, observed) == [
        DriftRow("schema_violation", "orders", "OrderCreated", "checkout", "email", "checkout", 2, 5),
        DriftRow("undeclared", "", "AuditLogged", "audit", "", "audit", 4, 2),
        DriftRow("undeclared", "orders", "OrderCreated", "checkout", "fraud", "fraud", 9, 3),
        DriftRow("declared_not_observed", "orders", "OrderCreated", "checkout", "warehouse", "warehouse", 10, 1),
        DriftRow("declared_not_observed", "rewards", "PointsExpired", "rewards", "", "rewards", 0, None),
    ]


def test_a_receiver_of_a_message_nobody_sent_is_blamed_only_when_nobody_declares_sending_it():
    declared = DeclaredMap(sends={("checkout", "OrderCreated"): "orders"}, receives={("email", "OrderCreated"): "orders"})
    # The sender is silent: that is the sender's row, not also the receiver's.
    assert [r.party for r in contract_drift(declared, ObservedTraffic())] == ["checkout"]
    lonely = DeclaredMap(receives={("email", "Refunded"): "refunds"})
    assert contract_drift(lonely, ObservedTraffic()) == [
        DriftRow("declared_not_observed", "refunds", "Refunded", "", "email", "email", 0)
    ]


def test_a_service_consuming_its_own_message_is_not_reported_silent():
    declared = DeclaredMap(
        sends={("warehouse", "ShipmentPrepared"): "shipments"}, receives={("warehouse", "ShipmentPrepared"): "shipments"}
    )
    assert contract_drift(declared, ObservedTraffic(produced={("warehouse", "ShipmentPrepared"): Tally(3)})) == []


def test_the_declared_map_keeps_each_services_channel():
    applications = read_document_files([str(CHECKOUT_DOCS / "*")])
    declared = declared_map(applications)
    assert declared.sends[("checkout", "OrderCreated")] == "shop.orders"
    assert declared.receives[("warehouse", "ShipmentPrepared")] == "shop.shipments"
    assert ("email", "ShipmentDispatched") not in declared.receives


# --- Through the API, over real CloudEvents ---------------------------------------------------------


def send(client, source: str, event_type: str, order: str, data: dict, cause: str | None = None) -> str:
    event_id = f"{order}-{event_type}"
    attributes = {"type": event_type, "source": source, "id": event_id, "correlationid": order}
    if cause:
        attributes["causationid"] = f"{order}-{cause}"
    headers, body = to_structured(CloudEvent(attributes, {"order_id": order, **data}))
    answer = client.post("/v1/events", body, content_type=headers["content-type"])
    assert answer.status_code == 202, answer.content
    return event_id


def checkout_order(client) -> None:  # type: ignore[no-untyped-def]
    """One order of the checkout choreography, as its services send it."""
    order = f"order-{next(_orders)}"
    send(client, "checkout", "OrderCreated", order, {"total": 42.5})
    send(client, "email", "EmailSent", order, {"template": "confirmation"}, cause="OrderCreated")
    send(client, "warehouse", "ShipmentPrepared", order, {"warehouse": "AMS-1"}, cause="OrderCreated")
    send(client, "rewards", "PointsCreated", order, {"points": 120}, cause="OrderCreated")
    send(client, "warehouse", "ShipmentDispatched", order, {"carrier": "DHL"}, cause="ShipmentPrepared")
    send(client, "email", "DispatchNoticeSent", order, {"template": "dispatch"}, cause="ShipmentDispatched")


@pytest.mark.django_db(transaction=True)
def test_independent_documents_give_exactly_the_expected_drift_rows(settings, admin_client):
    settings.ASYNCAPI_FILES = [str(CHECKOUT_DOCS / "*.json"), str(CHECKOUT_DOCS / "*.yaml")]
    settings.FLOWS_FILE = None
    for _ in range(3):
        checkout_order(admin_client)
    correlate_pending_observations()
    answer = admin_client.get("/api/contracts", {"window": "1h"})
    assert answer.status_code == 200, answer.content
    rows = answer.json()["results"]
    examples = [row.pop("example_flow") for row in rows]
    assert rows == [
        # warehouse's document declares a warehouse_code its ShipmentPrepared never carries
        {
            "kind": "schema_violation",
            "channel": "shop.shipments",
            "message": "ShipmentPrepared",
            "producer": "warehouse",
            "consumer": "",
            "party": "warehouse",
            "count": 3,
        },
        # email's document does not declare that it consumes ShipmentDispatched
        {
            "kind": "undeclared",
            "channel": "shop.shipments",
            "message": "ShipmentDispatched",
            "producer": "warehouse",
            "consumer": "email",
            "party": "email",
            "count": 3,
        },
    ]
    flow = admin_client.get(f"/api/flows/{examples[0]}").json()
    assert flow["key"].startswith("order-") and "ShipmentPrepared" in {node["name"] for node in flow["nodes"]}
    assert answer.json()["next"] is None


@pytest.mark.django_db(transaction=True)
def test_the_demo_documents_show_the_out_of_date_rewards_contract(settings, admin_client):
    settings.ASYNCAPI_FILES = [str(DEMO_DOCS / "*.yaml")]
    settings.FLOWS_FILE = None
    checkout_order(admin_client)
    correlate_pending_observations()
    rows = admin_client.get("/api/contracts", {"kind": "schema_violation"}).json()["results"]
    parties = {(row["message"], row["party"], row["consumer"]) for row in rows}
    assert ("PointsCreated", "rewards", "") in parties  # 'points_awarded' was renamed 'points' since
    silent = admin_client.get("/api/contracts", {"kind": "declared_not_observed", "service": "rewards"}).json()["results"]
    assert ("PointsExpired", "rewards") in {(row["message"], row["party"]) for row in silent}


@pytest.mark.django_db(transaction=True)
def test_drift_rows_page_with_a_cursor(settings, admin_client):
    settings.ASYNCAPI_FILES = [str(DEMO_DOCS / "*.yaml")]
    settings.FLOWS_FILE = None
    everything = admin_client.get("/api/contracts").json()["results"]
    assert len(everything) >= 3
    first = admin_client.get("/api/contracts", {"limit": 2}).json()
    second = admin_client.get("/api/contracts", {"limit": 2, "cursor": first["next"]}).json()
    assert first["results"] + second["results"] == everything[:4]


@pytest.mark.django_db(transaction=True)
def test_without_documents_there_is_no_drift(settings, admin_client):
    settings.ASYNCAPI_FILES = []
    checkout_order(admin_client)
    correlate_pending_observations()
    assert admin_client.get("/api/contracts").json() == {"results": [], "next": None}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"kind": "wrong"}, "'kind' must be one of"),
        ({"window": "1y"}, "window must be one of"),
        ({"limit": "0"}, "'limit' must be from 1"),
        ({"cursor": "not-ours"}, "'cursor' is not one this server handed out"),
        ({"colour": "red"}, "Unknown parameter(s) colour"),
    ],
)
def test_bad_contract_queries_get_a_clear_400(admin_client, query, says):
    answer = admin_client.get("/api/contracts", query)
    assert answer.status_code == 400
    assert says in answer.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_an_uploaded_document_declares_too_and_a_broken_one_is_refused_in_the_admin(settings, admin_client):
    settings.ASYNCAPI_FILES = []
    rewards = (CHECKOUT_DOCS / "rewards.yaml").read_text()
    saved = admin_client.post("/admin/tracing/contractdocument/add/", {"name": "rewards.yaml", "document": rewards, "upload": ""})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    silent = admin_client.get("/api/contracts").json()["results"]
    assert {(row["kind"], row["message"], row["party"]) for row in silent} == {
        ("declared_not_observed", "PointsCreated", "rewards"),
        ("declared_not_observed", "OrderCreated", "rewards"),
    }
    broken = admin_client.post(
        "/admin/tracing/contractdocument/add/", {"name": "broken.yaml", "document": "asyncapi: 3.0.0\ninfo: {title: x}\n"}
    )
    assert broken.status_code == 200
    assert "broken.yaml, /info: &#x27;version&#x27; is a required property" in broken.content.decode()


@pytest.mark.django_db
def test_a_document_broken_while_running_keeps_the_last_good_ones_and_the_page_says_why(
    settings, tmp_path, admin_client, monkeypatch
):
    monkeypatch.setattr(contracts, "RECHECK_SECONDS", 0)
    document = tmp_path / "rewards.yaml"
    document.write_text((CHECKOUT_DOCS / "rewards.yaml").read_text())
    settings.ASYNCAPI_FILES = [str(document)]
    assert [app.service for app in declared_applications()] == ["rewards"]
    document.write_text("asyncapi: 3.0.0\ninfo: {title: rewards}\n")
    assert [app.service for app in declared_applications()] == ["rewards"]
    page = admin_client.get("/services/contracts/").content.decode()
    assert "/info: &#x27;version&#x27; is a required property" in page
    assert "rewards.yaml" in page  # the documents read before are still listed
    forget_loaded_documents()  # a process started after the edit has none to keep, and still runs
    assert declared_applications() == ()


@pytest.mark.django_db
def test_a_broken_document_stops_the_system_check_naming_it(settings, tmp_path):
    from tracing.checks import asyncapi_documents_check

    (tmp_path / "bad.yaml").write_text("asyncapi: 3.0.0\ninfo: {title: x, version: '1'}\noperations: {o: {action: fly}}\n")
    settings.ASYNCAPI_FILES = [str(tmp_path / "*.yaml")]
    [error] = asyncapi_documents_check()
    assert error.id == "tracing.E002" and "bad.yaml, /operations/o" in error.msg


def test_an_events_uri_source_stands_for_the_application_it_ends_with():
    application = application_of(["checkout", "fraud-check"])
    names = ("checkout", "/checkout", "urn:shop:checkout", "https://shop.example/fraud-check/")
    assert [application(name) for name in names] == ["checkout", "checkout", "checkout", "fraud-check"]
    assert application("/audit") == "/audit"


@pytest.mark.django_db(transaction=True)
def test_events_whose_source_is_a_uri_path_are_their_applications(settings, admin_client):
    settings.ASYNCAPI_FILES = [str(CHECKOUT_DOCS / "*.json"), str(CHECKOUT_DOCS / "*.yaml")]
    order = f"order-{next(_orders)}"
    send(admin_client, "/checkout", "OrderCreated", order, {"total": 1.0})
    send(admin_client, "/rewards", "PointsCreated", order, {"points": 5}, cause="OrderCreated")
    correlate_pending_observations()
    rows = admin_client.get("/api/contracts").json()["results"]
    assert {(row["message"], row["producer"], row["consumer"]) for row in rows if row["kind"] == "undeclared"} == set()
    silent = {(row["message"], row["party"]) for row in rows if row["kind"] == "declared_not_observed"}
    assert ("OrderCreated", "rewards") not in silent and ("OrderCreated", "email") in silent
