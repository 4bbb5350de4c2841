"""Bad input end to end (contract §8), on the real embedded broker with a real worker.

A simulated day is published through ``run_simulation`` while a few hundred bad records of
every kind (``tests.badinput``) are produced, concurrently, on all four input topics. Then:

* the statistics equal the simulator's expected totals exactly (plus the one campaign the
  accepted odd records belong to, whose figures are known in advance): no count changed;
* every bad record is on ``sms.dead-letter`` (at least once: delivery is at least once)
  with its source topic, partition and offset, raw key and value, a reason and the
  expected error_kind; nothing else is dead-lettered, in particular no accepted record;
* the worker is still alive and ready, and reached the totals within a bounded time (it
  never stalled on a bad record).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaProducer

from simulator.check import mismatches
from simulator.scenario import generate
from streams.devtools.simulate import run_simulation, wait_for_expected
from tests import badinput as B
from tests.harness import Cluster

pytestmark = pytest.mark.integration

MESSAGES = 1000
SEED = 11
BAD_SEED = 3
MAX_RECORD = 4 * 1024 * 1024  # the upstream producer may send records of a few MB


@dataclass
class Produced:
    item: B.Item
    topic: str  # the actual topic name (configurable)
    partition: int
    offset: int


@dataclass
class RunResult:
    produced: list[Produced]
    expected: dict
    stats: dict
    diff: list[str]
    dead: list[tuple]  # (key, DeadLetter dict or raw bytes, partition, offset)
    statuses: dict
    elapsed: float
    worker_alive: bool
    worker_ready: bool
    log_tail: str = ""
    crashes: list[str] = field(default_factory=list)  # agent crashes logged (Faust restarts the agent)
    timings: dict = field(default_factory=dict)


async def produce_items(cluster: Cluster, items: list[B.Item], chunks: int = 40, pause: float = 0.1) -> list[Produced]:
    """Produce ``items`` as raw bytes, in order, spread over time; returns where each landed."""
    s = cluster.settings
    names = {
        B.CAMPAIGNS: s.topics.campaigns,
        B.MESSAGE_SENT: s.topics.message_sent,
        B.DLR: s.topics.dlr,
        B.UNSUBSCRIBES: s.topics.unsubscribes,
    }
    producer = AIOKafkaProducer(bootstrap_servers=cluster.broker.bootstrap, acks="all", max_request_size=MAX_RECORD)
    await producer.start()
    out: list[Produced] = []
    try:
        size = max(1, -(-len(items) // chunks))
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            futures = [await producer.send(names[it.topic], key=it.key, value=it.value) for it in batch]
            for it, fut in zip(batch, futures):
                md = await fut
                out.append(Produced(it, md.topic, md.partition, md.offset))
            await asyncio.sleep(pause)
    finally:
        await producer.stop()
    return out


def run_with_bad_input(
    cluster: Cluster, items: list[B.Item], seed: int = SEED, messages: int = MESSAGES, timeout: float = 60.0
) -> RunResult:
    """Scenario + bad records through one (already started) worker; everything observed."""
    s = cluster.settings
    scenario = generate(seed=seed, messages=messages, campaigns=4)
    expected = dict(scenario.expected.stats)
    fuzz = B.expected_fuzz_stats(items)
    if any(it.outcome == B.ACCEPTED for it in items):
        expected[B.FUZZ_CAMPAIGN] = fuzz
    t0 = time.monotonic()

    async def go() -> tuple[list[Produced], bool]:
        sim = asyncio.create_task(run_simulation(s, scenario, wait=True, timeout=timeout))
        produced = await produce_items(cluster, items)
        return produced, await sim

    produced, ok = asyncio.run(go())
    t_published = time.monotonic() - t0
    assert ok, "the sends of phase 1 were never all counted: the worker stalled"
    ok, stats, diff = asyncio.run(wait_for_expected(s, expected, timeout=timeout))
    elapsed = time.monotonic() - t0
    w = cluster.workers[0]
    dead = cluster.read_topic(s.topics.dead_letter)
    statuses = cluster.latest_by_version(s.topics.message_status, "message_id")
    crashes = [line for line in w.log_path.read_text(errors="replace").splitlines() if "Crashed reason" in line]
    return RunResult(
        produced,
        expected,
        stats,
        diff,
        dead,
        statuses,
        elapsed,
        w.running,
        w.ready(),
        w.tail(60),
        crashes,
        {"published": t_published},
    )


def check_dead_letters(run: RunResult) -> dict[str, int]:
    """Every bad record dead-lettered as expected, nothing else; returns the kinds seen."""
    by_origin: dict[tuple[str, int, int], list[dict]] = {}
    stray = []
    for key, v, _, _ in run.dead:
        assert isinstance(v, dict), f"an undecodable record on the dead-letter topic: {v[:80]!r}"
        assert v["key"] == key or v["key"] is None, "a dead letter is keyed as its record was"
        if v["offset"] < 0:  # orphan receipts: none in this scenario (no 24 h window is reached)
            stray.append(v)
            continue
        by_origin.setdefault((v["topic"], v["partition"], v["offset"]), []).append(v)
    assert not stray, f"unexpected orphan reports: {stray[:3]}"
    kinds: dict[str, int] = {}
    bad_origins = set()
    for p in run.produced:
        origin = (p.topic, p.partition, p.offset)
        found = by_origin.get(origin, [])
        if p.item.outcome == B.ACCEPTED:
            assert not found, f"{p.item} was accepted by the rules but dead-lettered: {found[0]['reason']}"
            continue
        bad_origins.add(origin)
        assert found, f"{p.item} at {origin} is not on the dead-letter topic"
        for d in found:  # at least once: every copy is the same record
            size = 2 * len(p.item.key or b"") + len(p.item.value or b"")
            if size < 900_000:
                assert (d["key"], d["value"]) == (p.item.key, p.item.value), f"{p.item}: raw bytes differ"
            else:  # cannot fit in a dead letter (default 1 MB record limit): where to read it instead
                assert d["value"] in (None, p.item.value), f"{p.item}: a partial copy"
                if d["value"] is None:
                    assert f"{p.topic}[{p.partition}]@{p.offset}" in d["reason"], d["reason"]
            assert d["error_kind"] == p.item.kind, f"{p.item}: error_kind {d['error_kind']}: {d['reason']}"
            assert d["reason"] and len(d["reason"]) >= 10, f"{p.item}: no usable reason"
        kinds[p.item.kind] = kinds.get(p.item.kind, 0) + 1
    others = set(by_origin) - bad_origins
    assert not others, f"{len(others)} good records dead-lettered, e.g. {by_origin[min(others)][0]}"
    return kinds


def check_accepted_statuses(run: RunResult) -> int:
    """Unparseable phones are kept as given, flagged, and the message counted."""
    n = 0
    for p in run.produced:
        msg = p.item.effect.get("message")
        if msg is None:
            continue
        mid, phone = msg
        st = run.statuses.get(mid)
        assert st is not None, f"no MessageStatus for accepted message {mid}"
        assert (st["status"], st["phone"], st["phone_valid"]) == ("NOT_SENT", phone, False), st
        n += 1
    return n


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("bad-input")).start()
    try:
        w = cluster.worker()
        w.wait_ready(90)
        items = B.bad_records(BAD_SEED)
        yield run_with_bad_input(cluster, items)
    finally:
        cluster.close()


def test_no_count_changed(run):
    assert run.diff == [], "\n".join(run.diff)
    assert mismatches(run.expected, run.stats) == []
    bad = sum(1 for p in run.produced if p.item.outcome == B.DEAD_LETTER)
    print(
        f"\n{bad} bad records among the scenario; stats equal expected after {run.elapsed:.1f}s "
        f"(published in {run.timings['published']:.1f}s)"
    )


def test_every_bad_record_is_dead_lettered_with_its_origin_and_nothing_else(run):
    kinds = check_dead_letters(run)
    assert set(kinds) >= {
        "undecodable",
        "empty",
        "truncated",
        "unknown_fingerprint",
        "wrong_record_type",
        "missing_id",
        "absurd_timestamp",
        "invalid_field",
        "unknown_enum",
    }
    print(f"\ndead letters by kind: {dict(sorted(kinds.items()))}")


def test_all_four_input_topics_were_fuzzed(run):
    s = {p.topic for p in run.produced if p.item.outcome == B.DEAD_LETTER}
    assert len(s) == 4


def test_unparseable_phones_are_kept_flagged_and_counted(run):
    assert check_accepted_statuses(run) > 0
    assert run.stats[B.FUZZ_CAMPAIGN]["not_sent"] == run.expected[B.FUZZ_CAMPAIGN]["not_sent"]


def test_worker_alive_ready_and_never_stalled(run):
    assert run.worker_alive, run.log_tail
    assert run.worker_ready, run.log_tail
    assert not run.crashes, "\n".join(run.crashes[:3])
    assert run.elapsed < 60, f"stats took {run.elapsed:.0f}s to reach the expected totals"
