import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from demo.fault_settings import apply_fault_changes, register_services
from demo.faults import FaultChange
from demo.models import ServiceFault

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_rows():
    register_services(("checkout", "email", "warehouse", "rewards", "fraud-check"), reset=True)


def test_the_panel_needs_a_login(client, shop_rows):
    assert client.get("/demo/faults/").status_code == 302
    assert client.post("/demo/faults/", {"service": "rewards", "drop": "30"}).status_code == 302
    assert ServiceFault.objects.get(service="rewards").drop == 0.0


def test_a_logged_in_user_sets_a_services_faults(admin_client, shop_rows):
    response = admin_client.post(
        "/demo/faults/",
        {"service": "rewards", "drop": "30", "slow": "2.5", "fail": "", "offline": "on"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    rewards = next(row for row in response.json()["services"] if row["service"] == "rewards")
    assert rewards["description"] == "offline, drops 30%, +2.5 s"
    stored = ServiceFault.objects.get(service="rewards")
    assert (stored.drop, stored.slow_seconds, stored.fail, stored.offline) == (0.3, 2.5, 0.0, True)


def test_a_plain_form_post_returns_to_the_overview(admin_client, shop_rows):
    response = admin_client.post("/demo/faults/", {"service": "warehouse", "slow": "5"})
    assert response.status_code == 302 and response["Location"] == "/#demo-faults"
    assert ServiceFault.objects.get(service="warehouse").slow_seconds == 5.0


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"service": "rewards", "drop": "150"}, "drop: Ensure this value is less than or equal to 100"),
        ({"service": "billing", "drop": "10"}, "service: Select a valid choice"),
        ({"service": "email", "slow": "soon"}, "slow: Enter a number"),
    ],
)
def test_bad_input_gets_a_precise_400_and_changes_nothing(admin_client, shop_rows, form, says):
    response = admin_client.post("/demo/faults/", form, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert all(row.faults().healthy for row in ServiceFault.objects.all())
    assert admin_client.post("/demo/faults/", form).status_code == 400


def test_changing_faults_needs_the_csrf_token(django_user_model, shop_rows):
    django_user_model.objects.create_user("ops", password="pw-for-tests-only")
    client = Client(enforce_csrf_checks=True)
    client.login(username="ops", password="pw-for-tests-only")
    assert client.post("/demo/faults/", {"service": "rewards", "drop": "30"}).status_code == 403
    assert client.post("/demo/faults/heal").status_code == 403


def test_heal_all_clears_every_fault(admin_client, shop_rows):
    apply_fault_changes([FaultChange("rewards", "drop", 0.3), FaultChange("email", "offline", 1.0)])
    response = admin_client.post("/demo/faults/heal", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert all(row["description"] == "healthy" for row in response.json()["services"])


def test_the_panel_reports_a_service_as_not_running_without_a_fresh_heartbeat(admin_client, shop_rows):
    state = admin_client.get("/demo/faults/").json()
    assert state["running"] is False
    assert {row["state"] for row in state["services"]} == {"not running"}


def test_the_demo_command_rejects_bad_options_with_a_message():
    with pytest.raises(CommandError, match="unknown service 'billing'"):
        call_command("demo", "--fault", "billing=drop:1", "--duration", "1")
    with pytest.raises(CommandError, match="--rate is orders per second"):
        call_command("demo", "--rate", "0")
    with pytest.raises(CommandError, match="needs checkout"):
        call_command("demo", "--services", "email,rewards")
