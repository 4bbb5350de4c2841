"""End to end on the real embedded broker with a real worker process (no mocks).

One messy simulated day is published through the contract's input topics; the outputs on
the contract's output topics must match the simulator's expected totals exactly.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from processors.removals import BLACKLISTED, PERMANENT_ERROR, removal_id
from simulator.check import mismatches
from simulator.scenario import generate
from streams.devtools.simulate import run_simulation, wait_for_expected
from tests.harness import Cluster

pytestmark = pytest.mark.integration

MESSAGES = 1500


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def run(request, tmp_path_factory):
    """Broker + N workers in one group + the scenario published in its two phases."""
    cluster = Cluster(tmp_path_factory.mktemp("e2e")).start()
    try:
        workers = [cluster.worker() for _ in range(request.param)]
        for w in workers:
            w.wait_ready(90)
        scenario = generate(seed=7, messages=MESSAGES, campaigns=4)
        bad = [(b"m-bad-1", b"\x00\x01garbage"), (None, b""), (b"m-bad-2", b"\xc3\x01" + b"\x00" * 8 + b"xx")]
        cluster.produce_raw(cluster.settings.topics.dlr, bad)
        t0 = time.monotonic()
        s = cluster.settings
        assert asyncio.run(run_simulation(s, scenario, wait=True, timeout=180))
        ok, stats, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=180))
        elapsed = time.monotonic() - t0
        yield cluster, scenario, stats, diff, elapsed
    finally:
        cluster.close()


def test_campaign_stats_equal_expected_totals(run):
    cluster, scenario, stats, diff, elapsed = run
    assert diff == [], "\n".join(diff)
    assert mismatches(scenario.expected.stats, stats) == []
    events = len(scenario.phase1) + len(scenario.phase2)
    print(f"\n{events} events -> stats equal expected after {elapsed:.1f}s ({events / elapsed:.0f} events/s)")


def test_rates_are_fractions_of_sent_and_sum_to_one(run):
    _, _, stats, _, _ = run
    for s in stats.values():
        r = s["rates"]
        if s["sent"]:
            assert (
                abs(r["receipt"] + r["waiting"] + r["temporary_error"] + r["permanent_error"] + r["unknown"] - 1) < 1e-9
            )
            assert r["delivery"] == s["status_counts"].get("DELIVERED", 0) / s["sent"]
            assert r["unsubscribe"] == s["unsubscribed"] / s["sent"]


def test_campaign_summary_is_the_last_launch(run):
    _, scenario, stats, _, _ = run
    for cid, exp in scenario.expected.stats.items():
        assert stats[cid]["name"] == exp["name"]
        assert stats[cid]["kind"] == exp["kind"]


def test_stats_versions_never_go_back_and_same_version_same_figures(run):
    cluster, _, _, _, _ = run
    seen: dict[tuple[str, int], dict] = {}
    last: dict[str, int] = {}
    for _, v, _, _ in cluster.read_topic(cluster.settings.topics.campaign_stats):
        cid, ver = v["campaign_id"], v["version"]
        assert ver >= last.get(cid, -1), f"{cid}: version went back from {last[cid]} to {ver}"
        last[cid] = ver
        figures = {k: v[k] for k in ("sent", "not_sent", "status_counts", "unsubscribed", "credits")}
        assert seen.setdefault((cid, ver), figures) == figures


def test_removals_exact_with_stable_event_ids(run):
    cluster, scenario, _, _, _ = run
    records = [v for _, v, _, _ in cluster.read_topic(cluster.settings.topics.removals)]
    by_id: dict[str, dict] = {}
    for r in records:
        prev = by_id.setdefault(r["event_id"], r)
        assert prev == r, "a removal delivered twice must be identical"
    expected_ids = {}
    for reason, phone, cause in scenario.expected.removals:
        expected_ids[removal_id(reason, cause)] = (reason, phone)
    got = {eid: (r["reason"], r["phone"]) for eid, r in by_id.items()}
    assert got == expected_ids
    for r in by_id.values():
        if r["reason"] == PERMANENT_ERROR:
            assert r["message_id"] and r["status"] == "HARD_BOUNCE"
        else:
            assert r["reason"] == BLACKLISTED and r["message_id"] is None


def test_suppressions_exact_with_versions_that_never_go_back(run):
    """Contract §11: what is in force for each phone at the end of the day, as the simulator
    and its literal reference of the contract compute it."""
    cluster, scenario, _, _, _ = run
    assert cluster.suppression_mismatches(scenario.expected.suppressed) == []
    assert {r for v in scenario.expected.suppressed.values() for r in v} == {PERMANENT_ERROR, BLACKLISTED}


def test_message_statuses_match(run):
    cluster, scenario, _, _, _ = run
    latest = cluster.latest_by_version(cluster.settings.topics.message_status, "message_id")
    got = {mid: v["status"] for mid, v in latest.items()}
    assert got == scenario.expected.message_status


def test_undecodable_values_are_dead_lettered_with_their_origin(run):
    cluster, _, _, _, _ = run
    dead = [v for _, v, _, _ in cluster.read_topic(cluster.settings.topics.dead_letter)]
    raw = {(d["key"], d["value"]) for d in dead}
    assert (b"m-bad-1", b"\x00\x01garbage") in raw
    assert (None, b"") in raw
    assert (b"m-bad-2", b"\xc3\x01" + b"\x00" * 8 + b"xx") in raw
    for d in dead:
        assert d["topic"] == cluster.settings.topics.dlr
        assert d["partition"] >= 0 and d["offset"] >= 0 and d["reason"] and d["error_kind"]


def test_health_and_metrics_endpoints(run):
    import urllib.request

    cluster, scenario, _, _, _ = run
    folded, text = 0.0, ""
    for w in cluster.workers:
        for path in ("/health/live", "/health/ready"):
            with urllib.request.urlopen(f"http://127.0.0.1:{w.web_port}{path}", timeout=5) as r:
                assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{w.web_port}/metrics", timeout=5) as r:
            page = r.read().decode()
        text += page
        folded += sum(
            float(line.split()[-1]) for line in page.splitlines() if line.startswith("smstally_events_total{")
        )
    port = cluster.workers[0].web_port
    assert folded >= len(scenario.phase1) - 10  # every decodable input record, phase 2 included
    assert 'smstally_dead_letters_total{kind="empty"}' in text
    assert 'smstally_dead_letters_total{kind="unknown_fingerprint"}' in text
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/campaigns", timeout=5) as r:
        body = r.read().decode()
    assert "+33" not in body  # campaign figures only: no phone numbers without credentials
