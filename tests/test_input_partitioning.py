"""Inputs published with another partitioner than murmur2 (contract §1): the production
topology in the driver, each input record placed by a partitioner drawn per topic or per
record (murmur2, librdkafka's CRC32, Sarama's FNV-1a), as two upstream services on two
client libraries publish. Under ``auto`` and ``repartition`` the figures, statuses and
removals are those of the oracle (which knows nothing of partitioners); under ``trust``
they are not, and the placement check says which partitioner the records fit.
"""

from __future__ import annotations

import logging
import random

import oracle
from driving import CODEC, NAMES, RECORD_OF, decoded, driver, feed, key_of
from hypothesis import given
from hypothesis import strategies as st
from strategies import HEAVY, T0, worlds
from test_topology_properties import (
    assert_stats_match,
    blacklist,
    published_statuses,
    removal_ids,
    shuffled,
    stable,
    stats,
)

from processors.driver import Driver
from processors.partitioner import PARTITIONERS, crc32_partition, partition_for
from processors.placement import PlacementCheck

MESSAGE_INPUTS = (NAMES.message_sent, NAMES.dlr)


def play(d: Driver, schedule: list, place_of) -> Driver:
    for topic, rec in schedule:
        if rec is None:
            d.drain()
        else:
            feed(d, topic, rec, PARTITIONERS[place_of(topic, rec)])
    d.drain()
    return d


def misplaced_by(schedule: list, place_of, n: int, topics=MESSAGE_INPUTS) -> int:
    """How many records of ``topics`` the producers put elsewhere than murmur2 does."""
    count = 0
    for topic, rec in schedule:
        if rec is not None and topic in topics:
            key = key_of(topic, rec)
            count += PARTITIONERS[place_of(topic, rec)](key, n) != partition_for(key, n)
    return count


# --- tolerance -----------------------------------------------------------------------------------
@HEAVY
@given(
    worlds(partitions=st.integers(2, 5)), st.randoms(use_true_random=False), st.sampled_from(["auto", "repartition"])
)
def test_any_mix_of_partitioners_gives_the_oracles_figures(world, rng, mode):
    """Each record's producer picks a partitioner at random: the worst mix there is."""
    choice = {}

    def place_of(topic, rec):
        return choice.setdefault((topic, rec["event_id"]), rng.choice(list(PARTITIONERS)))

    schedule = shuffled(world, rng)
    d = play(driver(world.partitions, partitioning=mode), schedule, place_of)
    assert_stats_match(stats(d), oracle.expected_stats(world, world.partitions))
    assert published_statuses(d) == oracle.statuses(world, world.partitions)
    ref = play(driver(world.partitions), schedule, lambda t, r: "murmur2")
    assert stable(d) == stable(ref)
    assert removal_ids(d) == removal_ids(ref)
    assert blacklist(d) == blacklist(ref)
    t = d.topology
    n = world.partitions
    report = t.placement.report()
    for topic in MESSAGE_INPUTS:
        found = report.get(topic, {}).get("mispartitioned", 0)
        assert found == misplaced_by(schedule, place_of, n, (topic,))
    if mode == "repartition":
        assert t.rerouted == sum(1 for topic, rec in schedule if rec is not None and topic in MESSAGE_INPUTS)
    else:
        assert t.rerouted == misplaced_by(schedule, place_of, n)


def _receipts_on_crc32(topic, rec):
    return "crc32" if topic == NAMES.dlr else "murmur2"


def _campaign(n_messages: int = 40) -> list:
    """One campaign: sends, each with a receipt, one in five a permanent error."""
    sched = []
    for i in range(n_messages):
        mid = f"msg-{i}"
        send = {
            "event_id": f"s-{mid}",
            "campaign_id": "c1",
            "message_id": mid,
            "contact_id": None,
            "phone": f"+3361234{i:04d}",
            "sent_at": T0 + i,
            "outcome": "SUBMITTED",
            "not_sent_reason": None,
            "segments": 1,
            "credits": 1.0,
            "provider": None,
            "country": "FR",
            "operator": None,
        }
        receipt = {
            "event_id": f"r-{mid}",
            "message_id": mid,
            "campaign_id": "c1",
            "provider": None,
            "status": "UNDELIV" if i % 5 == 0 else "DELIVRD",
            "error_code": "1" if i % 5 == 0 else "0",
            "done_at": None,
            "received_at": T0 + 100_000 + i,
        }
        sched += [(NAMES.message_sent, send), (NAMES.dlr, receipt)]
    return sched


def test_trust_folds_misplaced_receipts_apart_from_their_send_and_auto_does_not():
    sched = _campaign()
    n = 8
    split = misplaced_by(sched, _receipts_on_crc32, n)
    assert split > 10  # crc32 and murmur2 disagree on most of the 40 keys
    ref = play(driver(n), sched, lambda t, r: "murmur2")
    auto = play(driver(n, partitioning="auto"), sched, _receipts_on_crc32)
    trust = play(driver(n, partitioning="trust"), sched, _receipts_on_crc32)
    assert stable(auto) == stable(ref)
    assert published_statuses(auto) == published_statuses(ref)
    assert removal_ids(auto) == removal_ids(ref) != set()
    counts = stats(trust)["c1"]["status_counts"]
    # Under trust the split receipts never meet their send: the send stays waiting.
    assert counts.get("DELIVERED", 0) + counts.get("HARD_BOUNCE", 0) == 40 - split
    assert stable(trust) != stable(ref)
    for d in (auto, trust):
        found = d.topology.placement.report()[NAMES.dlr]
        assert found["mispartitioned"] == split
        assert found["partitioner"] == "crc32"
        assert NAMES.message_sent not in d.topology.placement.report()
    assert auto.topology.rerouted == split and trust.topology.rerouted == 0


def test_a_forwarded_record_delivered_twice_counts_once():
    """At least once: the input batch handled again (a crash before its commit) forwards its
    misplaced records again; the fold is idempotent."""
    sched = _campaign(20)
    ref = play(driver(8), sched, lambda t, r: "murmur2")
    d = play(driver(8), sched, _receipts_on_crc32)
    for p in range(8):  # every receipt read again, as after a crash before the commit
        d.positions[(NAMES.dlr, p)] = 0
    d.drain()
    assert stable(d) == stable(ref)
    assert published_statuses(d) == published_statuses(ref)
    assert d.topology.rerouted == 2 * misplaced_by(sched, _receipts_on_crc32, 8)


def test_keyless_records_are_counted_and_folded_on_their_messages_partition():
    sched = _campaign(20)
    ref = play(driver(4), sched, lambda t, r: "murmur2")
    d = driver(4)
    for topic, rec in sched:  # a producer that forgot the key: aiokafka puts it anywhere
        d.send(topic, None, CODEC.encode(RECORD_OF[topic], rec), None)
    d.drain()
    assert stable(d) == stable(ref)
    report = d.topology.placement.report()
    assert report[NAMES.message_sent]["keyless"] == report[NAMES.message_sent]["mispartitioned"] == 20
    assert report[NAMES.dlr]["keyless"] == 20
    assert report[NAMES.dlr]["partitioner"] is None


def test_a_forwarded_record_that_is_bad_input_is_dead_lettered_as_the_original():
    d = driver(8)
    key = next(
        f"bad-{i}".encode()
        for i in range(100)
        if crc32_partition(f"bad-{i}".encode(), 8) != partition_for(f"bad-{i}".encode(), 8)
    )
    d.send(NAMES.dlr, key, b"not avro", PARTITIONERS["crc32"])
    d.drain()
    [(_, letter)] = decoded(d, NAMES.dead_letter)
    assert letter["topic"] == NAMES.dlr
    assert letter["partition"] == crc32_partition(key, 8)
    assert letter["offset"] == 0
    assert letter["key"] == key and letter["value"] == b"not avro"
    assert d.topology.rerouted == 1


def test_unsubscribes_and_launches_are_checked_but_not_forwarded():
    d = driver(8)
    phones = [f"+336123456{i:02d}" for i in range(30)]
    for i, phone in enumerate(phones):
        feed(
            d,
            NAMES.unsubscribes,
            {
                "event_id": f"u{i}",
                "phone": phone,
                "contact_id": None,
                "campaign_id": None,
                "action": "UNSUBSCRIBE",
                "channel": "LINK",
                "text": None,
                "at": 1_700_000_000_000,
            },
            PARTITIONERS["fnv1a"],
        )
    d.drain()
    expected = sum(PARTITIONERS["fnv1a"](p.encode(), 8) != partition_for(p.encode(), 8) for p in phones)
    found = d.topology.placement.report()[NAMES.unsubscribes]
    assert found["mispartitioned"] == expected > 0
    assert found["partitioner"] == "fnv1a"
    assert d.topology.rerouted == 0
    assert sum(blacklist(d).values()) == 30  # re-keyed by phone inside: every one folded


# --- detection -----------------------------------------------------------------------------------
class _Rec:
    def __init__(self, key, partition):
        self.key, self.partition = key, partition


def test_the_check_logs_once_a_minute_per_topic_and_names_the_partitioner(caplog):
    now = [0.0]
    check = PlacementCheck(clock_s=lambda: now[0])
    keys = [f"k{i}".encode() for i in range(200)]
    misplaced = [_Rec(k, crc32_partition(k, 6)) for k in keys if crc32_partition(k, 6) != partition_for(k, 6)]
    with caplog.at_level(logging.WARNING, logger="smstally"):
        for i in range(0, len(misplaced), 5):
            check.found("sms.dlr", 6, misplaced[i : i + 5])
            now[0] += 2.0
        check.found("sms.message-sent", 6, [_Rec(None, 3)])
    lines = [r.getMessage() for r in caplog.records]
    assert 60 < 2 * (len(misplaced) // 5) < 120  # the batches spanned more than one minute, less than two
    assert sum("sms.dlr" in line for line in lines) == 2  # at 0 s and at 60 s
    assert sum("sms.message-sent" in line for line in lines) == 1
    assert "crc32" in lines[0] and "librdkafka" in lines[0]
    report = check.report()
    assert report["sms.dlr"]["mispartitioned"] == len(misplaced)
    assert report["sms.dlr"]["partitioner"] == "crc32"
    assert report["sms.message-sent"] == {
        "mispartitioned": 1,
        "keyless": 1,
        "partitioner": None,
        "summary": report["sms.message-sent"]["summary"],
    }


def test_records_no_usual_partitioner_explains_are_reported_as_unknown():
    check = PlacementCheck()
    rng = random.Random(3)
    recs = []
    while len(recs) < 40:
        k = f"x{rng.random()}".encode()
        p = rng.randrange(16)
        if all(place(k, 16) != p for place in PARTITIONERS.values()):
            recs.append(_Rec(k, p))
    for i in range(0, 40, 4):
        check.found("sms.dlr", 16, recs[i : i + 4])
    assert check.report()["sms.dlr"]["partitioner"] == "unknown"
    assert "no usual partitioner" in check.report()["sms.dlr"]["summary"]


def test_partitioning_must_be_a_known_mode():
    import pytest

    with pytest.raises(ValueError, match="auto, repartition, trust"):
        driver(2, partitioning="sometimes")
