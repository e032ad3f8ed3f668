import random

import pytest

from demo.catalog import SERVICES, parse_services
from demo.faults import FaultChange, FaultError, Faults, chance, parse_fault


def test_it_parses_a_drop_share_for_a_service():
    assert parse_fault("rewards=drop:0.3", SERVICES) == FaultChange("rewards", "drop", 0.3)


def test_it_parses_slow_as_seconds_and_offline_without_a_value():
    assert parse_fault("warehouse=slow:5", SERVICES) == FaultChange("warehouse", "slow", 5.0)
    assert parse_fault("fraud-check=offline", SERVICES) == FaultChange("fraud-check", "offline", 1.0)
    assert parse_fault("fraud-check=offline:0", SERVICES) == FaultChange("fraud-check", "offline", 0.0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rewards", "SERVICE=KIND[:VALUE]"),
        ("billing=drop:0.3", "unknown service 'billing'"),
        ("rewards=explode:1", "unknown fault 'explode'"),
        ("rewards=drop:lots", "needs a number"),
        ("rewards=drop:30", "use a value from 0 to 1"),
        ("warehouse=slow:-1", "out of range"),
        ("email=fail:nan", "not a number"),
        ("email=offline:2", "offline takes no value"),
    ],
)
def test_it_explains_a_fault_it_cannot_read(text, says):
    with pytest.raises(FaultError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_fault(text, SERVICES)


def test_changes_to_one_service_combine():
    faults = Faults()
    for text in ("rewards=drop:0.5", "rewards=slow:2", "rewards=offline"):
        faults = parse_fault(text, SERVICES).apply(faults)
    assert faults == Faults(drop=0.5, slow_seconds=2.0, offline=True)
    assert faults.describe() == "offline, drops 50%, +2 s"
    assert Faults().describe() == "healthy"


def test_chance_is_exact_at_the_extremes_and_proportional_between():
    rng = random.Random(7)
    assert not any(chance(rng, 0.0) for _ in range(1000))
    assert all(chance(rng, 1.0) for _ in range(1000))
    hits = sum(chance(rng, 0.3) for _ in range(10_000))
    assert 2_700 < hits < 3_300


def test_the_shop_cannot_run_without_checkout_or_with_unknown_services():
    assert parse_services("rewards, checkout") == ("checkout", "rewards")
    with pytest.raises(ValueError, match="needs checkout"):
        parse_services("email,rewards")
    with pytest.raises(ValueError, match="unknown service billing"):
        parse_services("checkout,billing")
