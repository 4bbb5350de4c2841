"""Contract §11 figures in the fold: time to delivery and the provider/operator breakdowns.

The any-order property and the oracle comparison cover them with the other figures
(tests/test_topology_properties.py: the oracle computes them independently); here are the
bucket bounds read literally, and the 50-key cap, which worlds with three providers never
reach: with 80 providers spread over the partitions in any order, any duplication, the
published breakdown is the same, and the oracle's.
"""

from __future__ import annotations

import random

import oracle
from driving import NAMES, driver, feed, latest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.counters import BREAKDOWN_KEYS, DELIVERY_BUCKETS, capped, delivery_bucket

T0 = 1_700_000_000_000


def test_buckets_are_the_contracts_and_each_bound_is_inclusive():
    assert DELIVERY_BUCKETS == (
        "le_5", "le_10", "le_30", "le_60", "le_120", "le_300", "le_600", "le_1800",
        "le_3600", "le_7200", "le_21600", "le_86400", "le_259200", "gt_259200",
    )  # fmt: skip
    assert delivery_bucket(-60_000) == "le_5"  # clocks apart: a negative time
    assert delivery_bucket(5_000) == "le_5"
    assert delivery_bucket(5_001) == "le_10"
    assert delivery_bucket(60_000) == "le_60"
    assert delivery_bucket(259_200_000) == "le_259200"
    assert delivery_bucket(259_200_001) == "gt_259200"
    for ms in (-1, 0, 4_999, 7_000, 3_600_000, 10**10):
        assert delivery_bucket(ms) == oracle.delivery_bucket(ms / 1000)


def test_the_cap_keeps_the_largest_keys_and_sums_the_rest_under_other():
    merged = {f"p{i:02d}": {"DELIVERED": i + 1} for i in range(60)}
    merged["other"] = {"HARD_BOUNCE": 2}  # a provider the platform calls "other"
    out = capped(merged)
    assert len(out) == BREAKDOWN_KEYS + 1
    assert set(out) - {"other"} == {f"p{i:02d}" for i in range(10, 60)}
    assert out["other"] == {"DELIVERED": sum(range(1, 11)), "HARD_BOUNCE": 2}
    assert sum(sum(v.values()) for v in out.values()) == sum(sum(v.values()) for v in merged.values())
    few = {"a": {"PENDING": 1}}
    assert capped(few) == few


def _send(i: int, provider: str | None, operator: str | None) -> dict:
    return {
        "event_id": f"s{i}",
        "campaign_id": "c1",
        "message_id": f"m{i}",
        "contact_id": None,
        "phone": f"+3361234{i:04d}",
        "sent_at": T0,
        "outcome": "SUBMITTED",
        "not_sent_reason": None,
        "segments": 1,
        "credits": 1.0,
        "provider": provider,
        "country": "FR",
        "operator": operator,
    }


def _receipt(i: int, seconds: int, status: str) -> dict:
    return {
        "event_id": f"r{i}",
        "message_id": f"m{i}",
        "campaign_id": "c1",
        "provider": None,
        "status": status,
        "error_code": "1" if status == "UNDELIV" else None,
        "done_at": T0 + seconds * 1000,
        "received_at": T0 + seconds * 1000 + 500,
    }


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 4))
def test_the_cap_does_not_depend_on_arrival_order_or_partitions(seed, partitions):
    rng = random.Random(seed)  # (hypothesis' own Random may draw one value throughout)
    items = []
    expected_pairs = []
    for i in range(200):
        provider = None if i % 17 == 0 else f"prov-{rng.randrange(80):02d}"
        operator = f"op-{i % 7}"
        status = "DELIVRD" if i % 4 else "UNDELIV"
        items.append((NAMES.message_sent, _send(i, provider, operator)))
        items.append((NAMES.dlr, _receipt(i, rng.choice([3, 40, 700, 90_000]), status)))
        expected_pairs.append((provider or "unknown", "DELIVERED" if i % 4 else "HARD_BOUNCE"))
    runs = []
    for _ in range(2):
        schedule = items + [rng.choice(items) for _ in range(60)]  # duplicates
        rng.shuffle(schedule)
        d = driver(partitions)
        for k, (topic, rec) in enumerate(schedule):
            feed(d, topic, rec)
            if k % 97 == 0:
                d.drain()
        d.drain()
        runs.append(latest(d, NAMES.campaign_stats)["c1"])
    a, b = runs
    assert a["by_provider"] == b["by_provider"] == oracle.breakdown(expected_pairs)
    assert len(a["by_provider"]) == BREAKDOWN_KEYS + 1
    assert a["by_operator"] == b["by_operator"] and len(a["by_operator"]) == 7
    assert a["delivery_seconds"] == b["delivery_seconds"]
    assert sum(a["delivery_seconds"].values()) == a["status_counts"]["DELIVERED"]


def test_a_later_receipt_moves_a_message_between_buckets_and_statuses():
    d = driver(2)
    feed(d, NAMES.message_sent, _send(1, "twilio", None))
    feed(d, NAMES.dlr, _receipt(1, 4, "DELIVRD"))
    d.drain()
    s = latest(d, NAMES.campaign_stats)["c1"]
    assert s["delivery_seconds"] == {"le_5": 1}
    assert s["by_provider"] == {"twilio": {"DELIVERED": 1}} and s["by_operator"] == {"unknown": {"DELIVERED": 1}}
    feed(d, NAMES.dlr, {**_receipt(1, 90, "UNDELIV"), "event_id": "r1-late"})  # later carrier time wins
    d.drain()
    s = latest(d, NAMES.campaign_stats)["c1"]
    assert s["delivery_seconds"] == {}
    assert s["by_provider"] == {"twilio": {"HARD_BOUNCE": 1}}
