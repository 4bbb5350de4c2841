"""Contract §11's sms.suppressions, from the production topology in the in-memory driver.

What is in force for a phone is a function of the set of events: any order and any
duplication of sends, receipts, unsubscribes and resubscribes (all mixed: unlike STOP
attribution, nothing here depends on which came first) gives the latest Suppression per
phone that the independent oracle computes; versions never go back; and the only records
the message stage adds to the phone-events topic are the hard-bounce changes.
"""

from __future__ import annotations

import random
from collections import defaultdict

import oracle
from driving import NAMES, decoded, driver, feed, latest
from hypothesis import given
from hypothesis import strategies as st
from strategies import DLR, HEAVY, SEND, T0, UNSUB, redelivered, with_drains, worlds

from processors.driver import Driver
from processors.records import HardBounce, SendIndexed, Unsubscribe, decode_phone_event

IGNORED = ("version", "updated_at")
PHONE = "+33612345678"


def play(d: Driver, schedule: list) -> Driver:
    for topic, rec in schedule:
        if rec is None:
            d.drain()
        else:
            feed(d, topic, rec)
    d.drain()
    return d


def mixed(world, rng: random.Random) -> list:
    """Every input in any order, some delivered more than once, drains anywhere."""
    return with_drains(rng, redelivered(rng, world.phase1 + world.phase2))


def suppressions(d: Driver) -> dict[str, dict]:
    """The compacted view of sms.suppressions, without what depends on the run."""
    return {k: {f: v for f, v in s.items() if f not in IGNORED} for k, s in latest(d, NAMES.suppressions).items()}


def assert_matches_oracle(d: Driver, world) -> None:
    expected = oracle.final_suppressions(world, world.partitions)
    got = suppressions(d)
    in_force = {k: v for k, v in got.items() if v["suppressed"]}
    assert in_force == expected
    for phone, s in got.items():  # a phone once in force, no longer: published as lifted
        if phone not in expected:
            assert s == {**dict.fromkeys(s), "phone": phone, "suppressed": False, "reasons": []}, phone


def phone_events(d: Driver) -> list:
    return [decode_phone_event(r.value) for r in d.records(NAMES.phone_events)]


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_any_order_and_duplication_give_the_oracles_suppressions(world, rng):
    d = play(driver(world.partitions), mixed(world, rng))
    assert_matches_oracle(d, world)


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_versions_never_go_back_and_grow_with_every_change(world, rng):
    d = play(driver(world.partitions), mixed(world, rng))
    last: dict[str, tuple[int, dict]] = {}
    for phone, s in decoded(d, NAMES.suppressions):
        assert phone == s["phone"]
        content = {k: v for k, v in s.items() if k not in IGNORED}
        if phone in last:
            version, before = last[phone]
            assert s["version"] >= version, phone
            if content != before:
                assert s["version"] > version, phone
        last[phone] = (s["version"], content)


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_only_hard_bounce_changes_reach_the_phone_events_topic(world, rng):
    """Traffic: a SendIndexed per SUBMITTED send handled, the unsubscribes, and a fact only
    for messages with a HARD_BOUNCE receipt, never one per receipt."""
    d = play(driver(world.partitions), mixed(world, rng))
    events = phone_events(d)
    facts = [e for e in events if isinstance(e, HardBounce)]
    _, may = oracle.hard_bounce_bounds(world, world.partitions)
    assert {f.message_id for f in facts if f.in_force} <= may
    # a redelivery may re-send that a message is not HARD_BOUNCE: only if a receipt said it
    with_hard_bounce = {
        r["message_id"]
        for r in world.receipts
        if oracle.canonical(r.get("provider"), r["status"], r.get("error_code")) == oracle.HARD_BOUNCE
    }
    assert {f.message_id for f in facts} <= with_hard_bounce
    assert all(isinstance(e, (SendIndexed, Unsubscribe, HardBounce)) for e in events)


def _send(mid: str, at: int, phone: str = PHONE, contact: str = "k1", campaign: str = "c1") -> tuple[str, dict]:
    return SEND, {
        "event_id": f"s-{mid}",
        "message_id": mid,
        "campaign_id": campaign,
        "contact_id": contact,
        "phone": phone,
        "sent_at": at,
        "outcome": "SUBMITTED",
        "not_sent_reason": None,
        "segments": 1,
        "credits": 1.0,
        "provider": "smpp",
        "country": "FR",
        "operator": None,
    }


def _dlr(mid: str, eid: str, status: str, at: int, code: str | None = None) -> tuple[str, dict]:
    return DLR, {
        "event_id": eid,
        "message_id": mid,
        "provider": "smpp",
        "status": status,
        "error_code": code,
        "done_at": None,
        "received_at": at,
    }


def _unsub(eid: str, action: str, at: int, campaign: str | None = None) -> tuple[str, dict]:
    return UNSUB, {
        "event_id": eid,
        "phone": "06 12 34 56 78",
        "contact_id": "k9",
        "campaign_id": campaign,
        "action": action,
        "channel": "LINK",
        "at": at,
    }


def _run(*items: tuple[str, dict]) -> Driver:
    return play(driver(2), list(items))


def test_a_hard_bounce_suppresses_until_a_later_resubscribe():
    d = _run(_send("m1", T0), _dlr("m1", "r1", "UNDELIV", T0 + 5_000, "1"))
    assert suppressions(d)[PHONE] == {
        "phone": PHONE,
        "suppressed": True,
        "reasons": ["PERMANENT_ERROR"],
        "blacklisted_at": None,
        "permanent_error_at": T0 + 5_000,
        "contact_id": "k1",
        "campaign_id": "c1",
        "message_id": "m1",
    }
    play(d, [_unsub("u1", "RESUBSCRIBE", T0 + 9_000)])
    assert suppressions(d)[PHONE]["reasons"] == []
    play(d, [_send("m2", T0 + 10_000), _dlr("m2", "r2", "UNDELIV", T0 + 12_000, "1")])  # bounces again
    assert suppressions(d)[PHONE]["permanent_error_at"] == T0 + 12_000


def test_a_resubscribe_after_the_bounce_but_processed_first_lifts_it_too():
    d = _run(_unsub("u1", "RESUBSCRIBE", T0 + 9_000), _send("m1", T0), _dlr("m1", "r1", "UNDELIV", T0 + 5_000, "1"))
    assert PHONE not in suppressions(d) or not suppressions(d)[PHONE]["suppressed"]


def test_both_reasons_and_the_latest_cause():
    d = _run(
        _unsub("u1", "UNSUBSCRIBE", T0 + 1_000, campaign="c7"),
        _unsub("u2", "UNSUBSCRIBE", T0 + 2_000),
        _send("m1", T0),
        _dlr("m1", "r1", "UNDELIV", T0 + 1_500, "1"),
    )
    s = suppressions(d)[PHONE]
    assert s["reasons"] == ["PERMANENT_ERROR", "BLACKLISTED"]
    assert (s["blacklisted_at"], s["permanent_error_at"]) == (T0 + 1_000, T0 + 1_500)
    assert (s["contact_id"], s["campaign_id"], s["message_id"]) == ("k9", None, None)  # u2 is the latest


def test_a_later_delivery_receipt_lifts_the_permanent_error():
    d = _run(_send("m1", T0), _dlr("m1", "r1", "UNDELIV", T0 + 5_000, "1"))
    assert suppressions(d)[PHONE]["suppressed"]
    play(d, [_dlr("m1", "r2", "DELIVRD", T0 + 8_000)])
    assert suppressions(d)[PHONE]["reasons"] == []
    facts = [e for e in phone_events(d) if isinstance(e, HardBounce)]
    assert [f.in_force for f in facts] == [True, False]
    assert facts[0].version < facts[1].version


def test_receipts_that_change_no_suppression_send_no_phone_event():
    d = _run(
        _send("m1", T0),
        *[_dlr("m1", f"r{i}", s, T0 + i) for i, s in enumerate(["ENROUTE", "ACCEPTD", "DELIVRD", "DELIVRD"])],
    )
    assert [type(e) for e in phone_events(d)] == [SendIndexed]
    assert suppressions(d) == {}


def test_a_redelivered_fact_publishes_the_same_suppression_again():
    d = _run(_send("m1", T0), _dlr("m1", "r1", "UNDELIV", T0 + 5_000, "1"))
    first = decoded(d, NAMES.suppressions)
    play(d, [_dlr("m1", "r1", "UNDELIV", T0 + 5_000, "1")])  # a duplicate: its outputs again
    again = decoded(d, NAMES.suppressions)
    assert len(again) == len(first) + 1
    assert again[-1][1]["version"] == first[-1][1]["version"]
    assert {k: v for k, v in again[-1][1].items() if k != "updated_at"} == {
        k: v for k, v in first[-1][1].items() if k != "updated_at"
    }


def test_insights_off_publishes_no_suppression_and_no_breakdown():
    items = [
        _send("m1", T0),
        _dlr("m1", "r1", "UNDELIV", T0 + 5_000, "1"),
        _send("m2", T0),
        _dlr("m2", "r2", "DELIVRD", T0 + 3),
    ]
    on, off = play(driver(2), items), play(driver(2, insights=False), items)
    assert suppressions(on) and not suppressions(off)
    s_on, s_off = latest(on, NAMES.campaign_stats)["c1"], latest(off, NAMES.campaign_stats)["c1"]
    assert s_on["by_provider"] == {"smpp": {"HARD_BOUNCE": 1, "DELIVERED": 1}}
    assert (s_off["by_provider"], s_off["by_operator"], s_off["delivery_seconds"]) == ({}, {}, {})
    drop = ("by_provider", "by_operator", "delivery_seconds", "updated_at")
    assert {k: v for k, v in s_on.items() if k not in drop} == {k: v for k, v in s_off.items() if k not in drop}
    per_message = defaultdict(int)
    for e in phone_events(on):
        per_message[type(e).__name__] += 1
    assert per_message == {"SendIndexed": 2, "HardBounce": 1}
    assert [type(e).__name__ for e in phone_events(off)] == ["SendIndexed", "SendIndexed"]
