"""Two upstream producers on two client libraries, on the real embedded broker (contract §1).

The sends are published by an aiokafka producer with its default partitioner (murmur2, as
Java clients place them), the receipts by one with librdkafka's default (CRC32, as
confluent-kafka places them): most receipts land on another partition than their send.
Under the default ``SMSTALLY_INPUT_PARTITIONING=auto`` two workers still produce the exact
figures, statuses and removals, and report what they found with the partitioner's name;
under ``trust`` (the behaviour before) one worker folds the receipts where they are, the
figures are wrong, and the report says why.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from processors.partitioner import crc32_partition, partition_for
from processors.removals import removal_id
from simulator.check import mismatches
from simulator.scenario import generate
from streams.devtools.simulate import read_stats, run_simulation, wait_for_expected, wait_quiescent
from tests.harness import Cluster, get

pytestmark = pytest.mark.integration

MESSAGES = 1200
PARTITIONS = 4
RECEIPTS_ON_CRC32 = {"sms.dlr": "crc32"}


def _misplaced_receipts(scenario) -> int:
    n = 0
    for e in scenario.phase1 + scenario.phase2:
        if e.topic == "sms.dlr":
            key = e.key.encode()
            n += crc32_partition(key, PARTITIONS) != partition_for(key, PARTITIONS)
    return n


def _ready_bodies(cluster) -> list[dict]:
    bodies = []
    for w in cluster.workers:
        status, body = get(w.web_port, "/health/ready", timeout=5)
        assert status == 200, body
        bodies.append(json.loads(body))
    return bodies


def _metric(cluster, name: str) -> float:
    total = 0.0
    for w in cluster.workers:
        status, body = get(w.web_port, "/metrics", timeout=5)
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith(name):
                total += float(line.split()[-1])
    return total


@pytest.fixture(scope="module")
def auto(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("mixed-auto"), partitions=PARTITIONS).start()
    try:
        for w in [cluster.worker(), cluster.worker()]:
            w.wait_ready(90)
        scenario = generate(seed=23, messages=MESSAGES, campaigns=3)
        s = cluster.settings
        assert asyncio.run(run_simulation(s, scenario, wait=True, timeout=180, partitioners=RECEIPTS_ON_CRC32))
        ok, stats, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=180))
        yield cluster, scenario, stats, diff
    finally:
        cluster.close()


def test_auto_gives_the_exact_statistics(auto):
    _, scenario, stats, diff = auto
    assert _misplaced_receipts(scenario) > MESSAGES // 2  # most receipts really are elsewhere
    assert diff == [], "\n".join(diff)


def test_auto_gives_the_exact_statuses_and_removals(auto):
    cluster, scenario, _, _ = auto
    latest = cluster.latest_by_version(cluster.settings.topics.message_status, "message_id")
    assert {mid: v["status"] for mid, v in latest.items()} == scenario.expected.message_status
    got = {v["event_id"] for _, v, _, _ in cluster.read_topic(cluster.settings.topics.removals)}
    assert got == {removal_id(reason, cause) for reason, _, cause in scenario.expected.removals}


def test_auto_reports_the_receipts_partitioner(auto):
    cluster, scenario, _, _ = auto
    bodies = _ready_bodies(cluster)
    found = [b["mispartitioned"].get("sms.dlr") for b in bodies]
    assert all(b["input_partitioning"] == "auto" for b in bodies)
    assert sum(f["mispartitioned"] for f in found if f) == _misplaced_receipts(scenario)
    assert all(f["partitioner"] == "crc32" for f in found if f)
    assert all("sms.message-sent" not in b["mispartitioned"] for b in bodies)
    assert _metric(cluster, 'smstally_input_mispartitioned_total{topic="sms.dlr"}') == _misplaced_receipts(scenario)
    # Forwarded at least once each (a rebalance may forward a record again).
    assert _metric(cluster, "smstally_rerouted_messages_total") >= _misplaced_receipts(scenario)
    log = "".join(w.log_path.read_text() for w in cluster.workers)
    assert "fit the crc32 partitioner" in log


def test_trust_folds_receipts_where_they_land_and_says_so(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("mixed-trust"), partitions=PARTITIONS).start()
    try:
        cluster.worker(SMSTALLY_INPUT_PARTITIONING="trust").wait_ready(90)
        scenario = generate(seed=23, messages=400, campaigns=2)
        s = cluster.settings
        assert asyncio.run(run_simulation(s, scenario, wait=True, timeout=180, partitioners=RECEIPTS_ON_CRC32))
        assert asyncio.run(wait_quiescent(s, 120))
        stats = asyncio.run(read_stats(s))
        assert mismatches(scenario.expected.stats, stats) != []  # the figures are wrong...
        [body] = _ready_bodies(cluster)
        assert body["input_partitioning"] == "trust"
        assert body["mispartitioned"]["sms.dlr"]["partitioner"] == "crc32"  # ...and the worker says why
        assert _metric(cluster, "smstally_rerouted_messages_total") == 0
    finally:
        cluster.close()
