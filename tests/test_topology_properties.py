"""The production topology (processors.topology) run by the in-memory driver (processors.driver)
on generated campaign worlds: records Avro-encoded and keyed as the contract says, placed
on partitions by Kafka's default partitioner (murmur2), internal records going round
through their partition logs, results read back from the decoded output topics.

Phase 1 carries launches, sends and receipts; phase 2 the unsubscribes (so every send is
indexed before any STOP is attributed: contract §6 makes attribution depend on what was
processed first, and that is tested example by example in test_stages.py). Within a phase,
records arrive in any order, any number of times, with the driver draining at random points;
or roughly in event-time order (how production sees them, and the order in which rule 6's
timeouts fire while messages are still pending).
"""

from __future__ import annotations

import random
from collections import defaultdict

import oracle
import orjson
import pytest
from driving import NAMES, decoded, driver, feed, key_of, latest
from hypothesis import given
from hypothesis import strategies as st
from strategies import DRAIN, HEAVY, PHONE_OF, UNSUB, first_occurrences, redelivered, with_drains, worlds

from processors import state_codec
from processors.driver import Driver, PartitionStore
from processors.removals import BLACKLISTED, PERMANENT_ERROR, removal_id
from processors.topology import Stores

IGNORED = ("version", "updated_at")  # depend on log offsets and the driver's clock
#: The output topics (what a crash can lose when it kills a worker before their delivery).
OUTPUTS = (NAMES.message_status, NAMES.removals, NAMES.dead_letter, NAMES.campaign_stats, NAMES.suppressions)


class Undecodable(dict):
    """A record a producer published as something else than Avro (its JSON): a DecodeError."""


# --- driving ---------------------------------------------------------------------------------------
def canonical(world) -> list:
    return world.phase1 + [DRAIN] + world.phase2


def shuffled(world, rng: random.Random, drains: bool = True) -> list:
    p1, p2 = redelivered(rng, world.phase1), redelivered(rng, world.phase2)
    if drains:
        p1, p2 = with_drains(rng, p1), with_drains(rng, p2)
    return p1 + [DRAIN] + p2


def event_time(item) -> int:
    topic, rec = item
    return rec.get("sent_at") or rec.get("received_at") or rec.get("at") or rec.get("launched_at")


def in_time_order(world, rng: random.Random) -> list:
    """How production sees it: roughly event-time order (ties and small skews in any order),
    with redeliveries; the watermark then passes deadlines while messages are pending."""
    p1 = sorted(redelivered(rng, world.phase1), key=lambda x: event_time(x) + rng.randint(0, 3 * 3_600_000))
    p2 = sorted(redelivered(rng, world.phase2), key=lambda x: event_time(x) + rng.randint(0, 3 * 3_600_000))
    return with_drains(rng, p1) + [DRAIN] + with_drains(rng, p2)


def play(d: Driver, schedule: list) -> Driver:
    for topic, rec in schedule:
        if rec is None:
            d.drain()
        elif isinstance(rec, Undecodable):
            d.send(topic, key_of(topic, rec), orjson.dumps(rec))
        else:
            feed(d, topic, rec)
    d.drain()
    return d


def run(world, schedule, partitions=None, timeout=None) -> Driver:
    return play(driver(partitions or world.partitions, timeout=timeout), schedule)


def stats(d: Driver) -> dict[str, dict]:
    """The compacted view of sms.campaign-stats: the latest published figures per campaign."""
    return latest(d, NAMES.campaign_stats)


def stable(d: Driver) -> dict:
    return {cid: {k: v for k, v in s.items() if k not in IGNORED} for cid, s in stats(d).items()}


def removals(d: Driver) -> list[tuple[str, dict]]:
    return decoded(d, NAMES.removals)


def removal_ids(d: Driver, reason: str | None = None) -> set[str]:
    return {v["event_id"] for _, v in removals(d) if reason in (None, v["reason"])}


def blacklist(d: Driver) -> dict[str, bool]:
    return {phone: s.blacklisted for phone, s in d.topology.stores.phones.items() if s.latest is not None}


def in_force(d: Driver) -> dict[str, dict]:
    """The compacted view of sms.suppressions (contract §11): the phones with a reason in force."""
    return {
        k: {f: v for f, v in s.items() if f not in IGNORED}
        for k, s in latest(d, NAMES.suppressions).items()
        if s["suppressed"]
    }


def published_statuses(d: Driver) -> dict[str, str]:
    """The compacted view of sms.message-status: the latest record per message."""
    return {k: v["status"] for k, v in latest(d, NAMES.message_status).items()}


def dead_letters(d: Driver) -> list[dict]:
    """Dead letters of input records (an orphan receipt report has no offset)."""
    return [v for _, v in decoded(d, NAMES.dead_letter) if v["offset"] >= 0]


def orphan_reports(d: Driver) -> list[str]:
    return [k for k, v in decoded(d, NAMES.dead_letter) if v["error_kind"] == "orphan_receipt"]


def assert_stats_match(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for cid, exp in expected.items():
        g = got[cid]
        for k, v in exp.items():
            if k == "credits":
                assert g[k] == pytest.approx(v, abs=1e-6), (cid, k)
            elif k == "rates":
                assert set(g[k]) == set(v)
                for name, x in v.items():
                    assert g[k][name] == pytest.approx(x), (cid, k, name)
            else:
                assert g[k] == v, (cid, k)


# --- order, duplication, drain points -------------------------------------------------------------
@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_any_order_duplication_and_drain_points_give_the_canonical_stats(world, rng):
    ref = run(world, canonical(world))
    got = run(world, shuffled(world, rng))
    assert stable(got) == stable(ref)
    assert stable(run(world, in_time_order(world, rng))) == stable(ref)
    assert published_statuses(got) == published_statuses(ref)
    assert blacklist(got) == blacklist(ref)
    # and without any duplicate
    dedup = run(world, first_occurrences(shuffled(world, random.Random(rng.random()))))
    assert stable(dedup) == stable(ref)


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_stats_and_statuses_match_an_independent_oracle(world, rng):
    expected = oracle.expected_stats(world, world.partitions)
    expected_statuses = oracle.statuses(world, world.partitions)
    for schedule in (in_time_order(world, rng), shuffled(world, rng)):
        t = run(world, schedule)
        assert_stats_match(stats(t), expected)
        assert published_statuses(t) == expected_statuses
        assert dead_letters(t) == []


@HEAVY
@given(worlds(partitions=st.just(1)), st.integers(2, 4), st.randoms(use_true_random=False))
def test_partition_count_changes_nothing_but_the_per_partition_watermark(world, n, rng):
    # With a timeout no world reaches, nothing depends on how messages are partitioned.
    never = 10**12
    one = run(world, shuffled(world, rng), partitions=1, timeout=never)
    many = run(world, shuffled(world, rng), partitions=n, timeout=never)
    assert stable(one) == stable(many)
    assert_stats_match(stats(one), oracle.expected_stats(world, 1, timeout=never))


# --- rates and counts --------------------------------------------------------------------------------
@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_rates_and_counts_are_consistent(world, rng):
    t = run(world, in_time_order(world, rng))
    credits = defaultdict(float)
    for s in world.sends:
        if s["outcome"] != "NOT_SENT":
            credits[s["campaign_id"]] += s["credits"]
    for cid, s in stats(t).items():
        r = s["rates"]
        total = r["receipt"] + r["waiting"] + r["temporary_error"] + r["permanent_error"] + r["unknown"]
        if s["sent"] > 0:
            assert total == pytest.approx(1.0)
            assert r["delivery"] <= r["receipt"] + 1e-12
            assert r["unsubscribe"] == pytest.approx(s["unsubscribed"] / s["sent"])
        else:
            assert set(r.values()) == {0.0}
        assert sum(s["status_counts"].values()) == s["sent"] + s["not_sent"]
        assert sum(s["not_sent_by_reason"].values()) == s["not_sent"] == s["status_counts"].get("NOT_SENT", 0)
        assert all(n > 0 for n in s["status_counts"].values())
        assert s["credits"] == pytest.approx(credits[cid], abs=1e-6)
        assert s["unsubscribed"] >= 0 and s["sent"] >= 0


# --- removals ---------------------------------------------------------------------------------------
def _check_permanent_error_removals(world, t: Driver) -> set[str]:
    sends = {s["message_id"]: s for s in world.sends}
    mids = set()
    for key, rem in removals(t):
        if rem["reason"] != PERMANENT_ERROR:
            continue
        mid = rem["message_id"]
        send = sends[mid]
        assert rem["event_id"] == removal_id(PERMANENT_ERROR, mid)
        assert key == rem["phone"] == PHONE_OF[send["phone"]]
        assert (rem["campaign_id"], rem["status"]) == (send["campaign_id"], "HARD_BOUNCE")
        mids.add(mid)
    must, may = oracle.hard_bounce_bounds(world, world.partitions)
    assert must <= mids <= may
    return mids


def _check_blacklisted_removals(world, t: Driver) -> None:
    actions = defaultdict(set)
    unsub_ids = defaultdict(set)
    for u in world.unsubscribes:
        phone = PHONE_OF[u["phone"]]
        actions[phone].add(u["action"])
        if u["action"] == "UNSUBSCRIBE":
            unsub_ids[phone].add(removal_id(BLACKLISTED, u["event_id"]))
    per_phone = defaultdict(set)
    for key, rem in removals(t):
        if rem["reason"] == BLACKLISTED:
            assert key == rem["phone"]
            assert rem["event_id"] in unsub_ids[rem["phone"]]  # derived from one of its unsubscribes
            per_phone[rem["phone"]].add(rem["event_id"])
    for phone, acts in actions.items():
        if acts == {"UNSUBSCRIBE"}:
            assert len(per_phone[phone]) == 1, phone
    assert set(per_phone) <= {p for p, acts in actions.items() if "UNSUBSCRIBE" in acts}


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_removals_whatever_the_order(world, rng):
    ref = run(world, canonical(world))
    schedule = shuffled(world, rng)
    got = run(world, schedule)
    dedup = run(world, first_occurrences(schedule))
    for t in (ref, got, dedup):
        _check_permanent_error_removals(world, t)
        _check_blacklisted_removals(world, t)
        assert blacklist(t) == oracle.final_blacklist(world)
    # a duplicate never yields a removal with a new event_id
    assert removal_ids(got) == removal_ids(dedup)
    # one event_id per cause: a removal id always names the same phone and reason
    seen = {}
    for t in (ref, got, dedup):
        for _, rem in removals(t):
            ident = (rem["phone"], rem["reason"], rem["message_id"])
            assert seen.setdefault(rem["event_id"], ident) == ident


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_unsubscribes_in_time_order_blacklist_exactly_as_the_contract_says(world, rng):
    p2 = sorted(world.phase2, key=lambda x: (x[1]["at"], x[1]["event_id"]))
    with_dups = []
    for item in p2:  # redeliveries of already-processed records anywhere after them
        with_dups.append(item)
        while with_dups and rng.random() < 0.3:
            with_dups.append(rng.choice(with_dups))
    t = run(world, redelivered(rng, world.phase1) + [DRAIN] + with_drains(rng, with_dups))
    expected = {removal_id(BLACKLISTED, eid) for eid in oracle.blacklisting_in_time_order(world)}
    assert removal_ids(t, BLACKLISTED) == expected


def test_resubscribe_then_a_later_unsubscribe_blacklists_again():
    t = driver(2)
    u = {"phone": "06 12 34 56 78", "channel": "LINK"}
    for eid, at, action in [
        ("u1", 1, "UNSUBSCRIBE"),
        ("u2", 2, "UNSUBSCRIBE"),
        ("r1", 3, "RESUBSCRIBE"),
        ("u3", 4, "UNSUBSCRIBE"),
        ("u1", 1, "UNSUBSCRIBE"),
    ]:
        feed(t, UNSUB, {**u, "event_id": eid, "action": action, "at": 1_700_000_000_000 + at})
        t.drain()
    rems = [rem["event_id"] for _, rem in removals(t)]
    assert rems == [removal_id(BLACKLISTED, "u1"), removal_id(BLACKLISTED, "u3"), removal_id(BLACKLISTED, "u1")]
    assert blacklist(t) == {"+33612345678": True}


# --- at-least-once redelivery and recovery ---------------------------------------------------------------
@HEAVY
@given(worlds(), st.randoms(use_true_random=False), st.data())
def test_redelivery_from_any_earlier_point_changes_nothing(world, rng, data):
    schedule = shuffled(world, rng)
    t = run(world, schedule)
    before = (stable(t), removal_ids(t), blacklist(t), published_statuses(t), in_force(t))
    flat = [x for x in schedule if x[1] is not None]
    k = data.draw(st.integers(0, len(flat)), label="replay from")
    play(t, with_drains(rng, flat[k:]))
    assert (stable(t), removal_ids(t), blacklist(t), published_statuses(t), in_force(t)) == before


def _crash(t: Driver) -> None:
    """Lose every stage's memory; keep the stores (changelogs) and the logs (topics); recover."""
    topo = t.topology
    messages, phones = dict(topo.message_stages), dict(topo.phone_stages)
    t.restart()
    for p, old in messages.items():
        fresh = topo.message_stages[p]
        assert fresh.counters == old.counters, p  # what recovery relies on
        assert fresh.watermark == old.watermark
    for p, old in phones.items():
        fresh = topo.phone_stages[p]
        assert (fresh.unsubscribed, fresh.attributions, fresh.last_event_at) == (
            old.unsubscribed,
            old.attributions,
            old.last_event_at,
        )


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_rebuilding_the_message_stage_reproduces_its_counters(world, rng):
    t = driver(world.partitions)
    p1 = [x for x in in_time_order(world, rng) if x[0] != UNSUB]  # phase 1, drains included
    cut = rng.randint(0, len(p1))
    play(t, p1[:cut])
    _crash(t)
    play(t, p1[cut:] + [DRAIN] + world.phase2)
    _crash(t)
    assert stable(t) == stable(run(world, canonical(world)))


@HEAVY
@given(worlds(), st.randoms(use_true_random=False), st.data())
def test_a_crash_anywhere_then_redelivery_since_the_last_commit_loses_and_doubles_nothing(world, rng, data):
    schedule = in_time_order(world, rng) if data.draw(st.booleans(), label="time order") else shuffled(world, rng)
    ref = run(world, schedule)
    k = data.draw(st.integers(0, len(schedule)), label="crash at")
    j = data.draw(st.integers(0, k), label="last commit")
    t = driver(world.partitions)
    play(t, schedule[:k])
    _crash(t)
    play(t, [x for x in schedule[j:k] if x[1] is not None] + schedule[k:])
    assert stable(t) == stable(ref)
    assert removal_ids(t) == removal_ids(ref)
    assert blacklist(t) == blacklist(ref)
    assert published_statuses(t) == published_statuses(ref)
    assert in_force(t) == in_force(ref) == oracle.final_suppressions(world, world.partitions)


@HEAVY
@given(worlds(), st.randoms(use_true_random=False), st.data())
def test_a_crash_that_loses_the_outputs_since_the_last_commit_loses_no_removal(world, rng, data):
    """The worst at-least-once crash: the stores kept changes whose outputs were never
    delivered. Redelivery of the inputs since the commit must bring every removal back."""
    schedule = in_time_order(world, rng) if data.draw(st.booleans(), label="time order") else shuffled(world, rng)
    ref = run(world, schedule)
    k = data.draw(st.integers(0, len(schedule)), label="crash at")
    j = data.draw(st.integers(0, k), label="last commit")
    t = driver(world.partitions)
    play(t, schedule[:j])
    committed = t.end_offsets(OUTPUTS)
    play(t, schedule[j:k])
    t.truncate(committed)
    _crash(t)
    play(t, [x for x in schedule[j:k] if x[1] is not None] + schedule[k:])
    assert stable(t) == stable(ref)
    assert removal_ids(t, BLACKLISTED) == removal_ids(ref, BLACKLISTED)
    must, _ = oracle.hard_bounce_bounds(world, world.partitions)
    assert {removal_id(PERMANENT_ERROR, mid) for mid in must} <= removal_ids(t, PERMANENT_ERROR)
    _check_permanent_error_removals(world, t)
    assert in_force(t) == oracle.final_suppressions(world, world.partitions)  # none lost with the outputs


# --- bad input ----------------------------------------------------------------------------------------
#: Broken copies of valid records: a field that breaks the contract (what Avro can carry), or
#: the whole record published as JSON instead of Avro (a DecodeError; e.g. an enum symbol
#: the schema lacks, which no Avro writer can write).
UNDECODABLE = "undecodable"
BREAKERS = {
    "sms.message-sent": [
        {"event_id": ""},
        {"sent_at": 1_700_000_000},
        {"outcome": "UNKNOWN"},
        {"message_id": "m" * 300},
        {"phone": " "},
        UNDECODABLE,
    ],
    "sms.dlr": [{"event_id": " "}, {"received_at": 0}, {"status": ""}, {"done_at": 32_503_680_000_000}],
    "sms.unsubscribes": [{"action": "UNKNOWN"}, {"at": 1_700_000_000}, UNDECODABLE, {"phone": ""}],
    "sms.campaigns": [UNDECODABLE, {"launched_at": 0}, {"campaign_id": ""}],
}


@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_invalid_records_are_dead_lettered_and_change_no_count(world, rng):
    bad1, bad2 = [], []
    for phase, items in ((bad1, world.phase1), (bad2, world.phase2)):
        for topic, rec in items:
            if rng.random() < 0.3:  # a broken copy of a valid record (same event_id, often)
                breaker = rng.choice(BREAKERS[topic])
                phase.append((topic, Undecodable(rec) if breaker == UNDECODABLE else {**rec, **breaker}))
    p1 = redelivered(rng, world.phase1 + bad1)
    p2 = redelivered(rng, world.phase2 + bad2)
    bad = {id(rec) for _, rec in bad1 + bad2}
    t = run(world, p1 + [DRAIN] + p2)
    clean = run(world, [x for x in p1 if id(x[1]) not in bad] + [DRAIN] + [x for x in p2 if id(x[1]) not in bad])
    assert stable(t) == stable(clean) == stable(run(world, canonical(world)))
    assert removal_ids(t) == removal_ids(clean)
    assert published_statuses(t) == published_statuses(clean)
    assert len(dead_letters(t)) == sum(1 for _, rec in p1 + p2 if id(rec) in bad)
    assert all(v["error_kind"] and v["reason"] for v in dead_letters(t))


# --- orphan receipts (rule 5) ------------------------------------------------------------------------
@HEAVY
@given(worlds(), st.randoms(use_true_random=False))
def test_orphan_receipts_are_reported_once_after_the_window(world, rng):
    t = run(world, in_time_order(world, rng))
    reported = orphan_reports(t)
    assert len(reported) == len(set(reported))  # once per message
    with_receipts = {r["message_id"] for r in world.receipts}
    never_sent = with_receipts - {s["message_id"] for s in world.sends}
    last = defaultdict(int)
    for r in world.receipts:
        last[r["message_id"]] = max(last[r["message_id"]], r["received_at"])
    wm = oracle.watermarks(world, world.partitions)
    due = {m for m in never_sent if last[m] + 24 * oracle.HOUR <= wm[oracle.partition_of(m, world.partitions)]}
    assert due <= set(reported) <= with_receipts
    # any order: never twice, never a message without receipts, and no count changes (orphans are held)
    t2 = run(world, shuffled(world, rng))
    reported2 = orphan_reports(t2)
    assert len(reported2) == len(set(reported2)) and set(reported2) <= with_receipts
    assert stable(t2) == stable(t)


# --- the stages over serialized stores (what the worker's changelogged tables hold) ---------------------
@HEAVY
@given(worlds(), st.randoms(use_true_random=False), st.data())
def test_stages_over_serialized_stores_behave_identically(world, rng, data):
    schedule = in_time_order(world, rng) if data.draw(st.booleans(), label="time order") else shuffled(world, rng)
    ref = run(world, schedule)
    t = driver(
        world.partitions,
        Stores(
            PartitionStore(state_codec.encode_message, state_codec.decode_message),
            PartitionStore(state_codec.encode_phone, state_codec.decode_phone),
            PartitionStore(state_codec.encode_campaign, state_codec.decode_campaign),
        ),
    )
    k = data.draw(st.integers(0, len(schedule)), label="crash at")
    play(t, schedule[:k])
    _crash(t)  # rebuilt from decoded states
    play(t, schedule[k:])
    assert stable(t) == stable(ref)
    assert removal_ids(t) == removal_ids(ref)
    assert published_statuses(t) == published_statuses(ref)
    for cs in t.topology.campaigns().values():
        assert state_codec.decode_campaign(state_codec.encode_campaign(cs)) == cs
