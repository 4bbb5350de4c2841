"""Kill workers at random while a messy day streams in, then check every output exactly.

Shared by the CI crash test (bounded) and ``scripts/crash_soak.py`` (long). Workers are
real ``smstally worker`` processes killed with SIGKILL, sometimes restarted on a wiped
data directory; the broker is the real embedded one.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processors.partitioner import partition_for
from processors.records import HardBounce, SendIndexed, decode_phone_event
from processors.removals import removal_id
from simulator.check import mismatches, sends_counted
from simulator.scenario import generate
from streams.ops.clients import StatsView, publish
from tests.harness import Cluster


@dataclass
class ChaosReport:
    kills: int = 0
    wiped: int = 0
    events: int = 0
    mismatches: list[str] = field(default_factory=list)
    settle_s: list[float] = field(default_factory=list)  # kill -> every running worker ready again
    final_settle_s: float = 0.0  # last publish -> stats equal expected
    duplicate_removals: int = 0
    odd_blacklist_phones: list[str] = field(default_factory=list)  # phones whose BLACKLISTED removals differ
    stats_records: int = 0

    def line(self) -> str:
        s = sorted(self.settle_s)
        med = s[len(s) // 2] if s else float("nan")
        return (
            f"chaos: kills={self.kills} (wiped {self.wiped}) events={self.events} "
            f"mismatches={len(self.mismatches)} settle after kill: median {med:.1f}s max "
            f"{max(s, default=float('nan')):.1f}s; final settle {self.final_settle_s:.1f}s; "
            f"removals redelivered {self.duplicate_removals}; stats records {self.stats_records}"
        )


def _quiescent(w) -> bool:
    body = w.readiness()
    return '"ready":true' in body and '"lag":0' in body


def _chunks(items: list, n: int) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def run_chaos(
    tmp: Path,
    *,
    workers: int = 3,
    messages: int = 3000,
    kills: int = 10,
    seed: int = 5,
    wipe_probability: float = 0.3,
    chunk: int = 400,
    chunk_pause: float = 0.25,
    settle_timeout: float = 240.0,
    partitioners: dict[str, str] | None = None,
    log=print,
) -> ChaosReport:
    """``partitioners``: the upstream producers' partitioner per topic (ops.clients.publish)."""
    rng = random.Random(seed)
    report = ChaosReport()
    cluster = Cluster(tmp, partitions=4).start()
    procs: list = []
    try:
        s = cluster.settings
        dirs = [tmp / f"state-{i}" for i in range(workers)]
        procs += [cluster.worker(data_dir=d) for d in dirs]
        for w in procs:
            w.wait_ready(120)
        scenario = generate(seed=seed, messages=messages, campaigns=4)
        report.events = len(scenario.phase1) + len(scenario.phase2)
        published = threading.Event()
        errors: list[BaseException] = []

        def publisher() -> None:
            try:
                for part in _chunks(scenario.phase1, chunk):
                    asyncio.run(publish(s, part, partitioners=partitioners))
                    time.sleep(chunk_pause)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the caller
                errors.append(exc)
            finally:
                published.set()

        t = threading.Thread(target=publisher, daemon=True)
        t.start()

        def kill_one() -> None:
            i = rng.randrange(workers)
            w = procs[i]
            t_kill = time.monotonic()
            w.kill()
            report.kills += 1
            time.sleep(rng.uniform(0.3, 2.0))
            wiped = rng.random() < wipe_probability
            if wiped:
                shutil.rmtree(dirs[i], ignore_errors=True)
                report.wiped += 1
            env = dict(w.env)
            procs[i] = cluster.worker(data_dir=dirs[i], SMSTALLY_WEB_PORT=env["SMSTALLY_WEB_PORT"])
            deadline = time.monotonic() + 120
            while not all(p.ready() for p in procs):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        "workers not ready 120 s after a kill:\n"
                        + "\n".join(f"worker {j}: {p.readiness()}" for j, p in enumerate(procs))
                        + "\n"
                        + procs[i].tail()
                    )
                for p in procs:
                    if not p.running:
                        raise RuntimeError(f"a worker died on its own:\n{p.crash_report()}")
                time.sleep(0.1)
            report.settle_s.append(time.monotonic() - t_kill)
            log(
                f"kill {report.kills}: worker {i}{' (state wiped)' if wiped else ''}, "
                f"all ready again {report.settle_s[-1]:.1f}s after the kill"
            )

        while report.kills < kills or not published.is_set():
            time.sleep(rng.uniform(0.5, 2.5))
            kill_one()
        t.join()
        if errors:
            raise errors[0]

        async def phase2() -> None:
            async with StatsView(s) as view:
                deadline = time.monotonic() + settle_timeout
                while not sends_counted(scenario.expected.stats, await view.refresh()):
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            "sends not counted: " + "; ".join(mismatches(scenario.expected.stats, view.latest)[:5])
                        )
            # STOP replies are attributed to the sends indexed when they are folded (contract
            # §6). A send index record lost with a killed worker is re-emitted when its
            # partition is replayed, so let every worker catch up first, as the real world does
            # (replies come long after the sends).
            deadline = time.monotonic() + settle_timeout
            quiet = 0
            while quiet < 3:  # every worker ready with nothing left to process, three polls running
                if time.monotonic() > deadline:
                    raise TimeoutError("workers not quiescent before phase 2")
                await asyncio.sleep(0.3)
                quiet = quiet + 1 if all(_quiescent(p) for p in procs) else 0
            await publish(s, scenario.phase2, partitioners=partitioners)

        asyncio.run(phase2())
        kill_one()  # one more, while the STOP replies are folded
        t_last = time.monotonic()

        async def settle() -> tuple[dict, bool]:
            async with StatsView(s) as view:
                deadline = time.monotonic() + settle_timeout
                while mismatches(scenario.expected.stats, await view.refresh()):
                    if time.monotonic() > deadline:
                        return dict(view.latest), True
                return dict(view.latest), False

        latest, timed_out = asyncio.run(settle())
        suppressions = cluster.suppression_mismatches(scenario.expected.suppressed, 0 if timed_out else 30)
        report.final_settle_s = time.monotonic() - t_last
        report.mismatches = mismatches(scenario.expected.stats, latest)
        report.mismatches += _check_outputs(cluster, scenario, report) + suppressions
        attribution = any("unsubscribed" in m for m in report.mismatches)
        if attribution or report.odd_blacklist_phones:
            events = [
                (part, off, decode_phone_event(raw))
                for _, raw, part, off in cluster.read_topic(cluster.settings.phone_events_topic)
            ]
            if attribution:
                report.mismatches += _explain_attribution(events)
            report.mismatches += _phone_histories(cluster, report.odd_blacklist_phones, events)
        if report.mismatches:
            # Whether the group was still busy (a timing problem) or idle with a wrong answer
            # (a lost or double-counted event) is the first thing a failure must tell.
            report.mismatches.append(
                f"settle {'timed out' if timed_out else 'ended'} after {report.final_settle_s:.1f}s"
            )
            report.mismatches += _diagnose(procs)
        return report
    except Exception as exc:
        exc.add_note("\n".join(_diagnose(procs)))
        raise
    finally:
        cluster.close()


def _diagnose(procs: list) -> list[str]:
    """Each worker's readiness, its consumer's positions and (in its log) every stack."""
    out = []
    for j, p in enumerate(procs):
        out.append(f"worker {j}: {p.readiness()}")
        out.append(f"worker {j}: {p.diagnose()}")
    time.sleep(1.0)  # the stack dumps are written by the workers' event loops
    return out


def _check_outputs(cluster: Cluster, scenario, report: ChaosReport) -> list[str]:
    problems: list[str] = []
    t = cluster.settings.topics
    last: dict[str, int] = {}
    figures: dict[tuple[str, int], tuple] = {}
    for _, v, _, _ in cluster.read_topic(t.campaign_stats):
        report.stats_records += 1
        cid, ver = v["campaign_id"], v["version"]
        if ver < last.get(cid, -1):
            problems.append(f"{cid}: stats version went back from {last[cid]} to {ver}")
        last[cid] = max(ver, last.get(cid, -1))
        fig = (v["sent"], v["not_sent"], tuple(sorted(v["status_counts"].items())), v["unsubscribed"], v["credits"])
        if figures.setdefault((cid, ver), fig) != fig:
            problems.append(f"{cid}: version {ver} published with two different figures")
    by_id: dict[str, dict] = {}
    for _, v, _, _ in cluster.read_topic(t.removals):
        prev = by_id.get(v["event_id"])
        if prev is not None:
            report.duplicate_removals += 1
            if prev != v:
                problems.append(f"removal {v['event_id']} redelivered with different content")
        by_id[v["event_id"]] = v
    want = {removal_id(reason, cause): (reason, phone) for reason, phone, cause in scenario.expected.removals}
    got = {eid: (r["reason"], r["phone"]) for eid, r in by_id.items()}
    if got != want:
        missing = set(want) - set(got)
        extra = set(got) - set(want)
        report.odd_blacklist_phones = sorted(
            {want[e][1] for e in missing if want[e][0] == "BLACKLISTED"}
            | {got[e][1] for e in extra if got[e][0] == "BLACKLISTED"}
        )
        problems.append(
            f"removals: {len(missing)} missing, {len(extra)} unexpected; missing e.g. "
            f"{[want[e] for e in sorted(missing)[:3]]}, unexpected e.g. "
            f"{[(by_id[e]['reason'], by_id[e]['phone'], by_id[e].get('campaign_id')) for e in sorted(extra)[:3]]}"
        )
    latest: dict[str, dict] = {}
    for _, v, _, _ in cluster.read_topic(t.message_status):
        cur = latest.get(v["message_id"])
        if cur is None or v["version"] >= cur["version"]:
            latest[v["message_id"]] = v
    statuses = {mid: v["status"] for mid, v in latest.items()}
    wrong = [mid for mid, st in scenario.expected.message_status.items() if statuses.get(mid) != st]
    if wrong:
        problems.append(f"message statuses: {len(wrong)} differ, e.g. {wrong[:3]}")
        problems.append(_where(cluster, scenario, wrong, statuses))
    return problems


def _where(cluster: Cluster, scenario, wrong: list[str], statuses: dict[str, str]) -> str:
    """Which partitions and which (expected, got) pairs the wrong statuses fall on: a loss
    confined to one partition points at its offsets, one spread over all at the fold."""
    n = cluster.partitions
    parts = Counter(partition_for(mid.encode(), n) for mid in wrong)
    pairs = Counter((scenario.expected.message_status[mid], statuses.get(mid)) for mid in wrong)
    return f"wrong statuses by message partition {dict(parts)}; (expected, got) {dict(pairs)}"


def _phone_histories(cluster: Cluster, phones: list[str], events: list, limit: int = 4) -> list[str]:
    """For the phones whose BLACKLISTED removals differ: every phone-events record of the
    phone and every changelog state written for it, with the worker that wrote it (the
    progress mark after it names the writer). A state that loses a send or a handled
    unsubscribe from one record to the next shows a writer working on an old state; a
    history that never regresses while the outputs are wrong points at the local store."""
    from processors.state_codec import decode_phone
    from streams.stores import MARK_PREFIX

    phones = phones[:limit]
    if not phones:
        return []
    out = []
    changelog = cluster.read_topic(f"{cluster.settings.app_id}-phones-changelog")
    writer: dict[tuple[int, int], str] = {}  # (partition, offset) of a state -> the next mark's value
    pending: dict[int, list[int]] = {}
    for key, raw, part, off in changelog:
        if key is not None and key.startswith(MARK_PREFIX):
            for o in pending.pop(part, []):
                writer[(part, o)] = raw.decode() if isinstance(raw, bytes) else str(raw)
        else:
            pending.setdefault(part, []).append(off)
    for phone in phones:
        out.append(f"phone {phone[:4]}…{phone[-2:]}: phone-events")
        for part, off, v in events:
            if v.phone == phone:
                if isinstance(v, SendIndexed):
                    what = f"send {v.campaign_id} {v.message_id} sent_at {v.sent_at}"
                elif isinstance(v, HardBounce):
                    what = f"hard bounce {v.message_id} in force {v.in_force} at {v.at} version {v.version}"
                else:
                    what = f"{v.action} {v.channel} {v.event_id} at {v.at} campaign {v.campaign_id}"
                out.append(f"  [{part}]@{off} {what}")
        out.append("  changelog states (sends / handled, writer mark)")
        for key, raw, part, off in changelog:
            if key == phone.encode():
                st = decode_phone(raw)
                out.append(
                    f"  [{part}]@{off} sends {[x.message_id for x in st.sends]} handled "
                    f"{[(e, h.campaign_id) for e, h in st.handled]} by {writer.get((part, off), '?')}"
                )
    return out


def _explain_attribution(events: list) -> list[str]:
    """Where the phone-events log put a STOP before the send index it should have seen.

    Attribution looks at the sends indexed before the STOP in that log (contract §6), so a
    mismatch is either an index record that came late (an emission problem) or a phone
    state that lost an indexed send (a state problem); this tells which.
    """
    sends: dict[str, list[tuple[int, int, str, str]]] = {}  # phone -> (partition, offset, campaign, message)
    stops: list[tuple[int, int, Any]] = []
    for part, off, v in events:  # the phone-events log
        if isinstance(v, SendIndexed):
            sends.setdefault(v.phone, []).append((part, off, v.campaign_id, v.message_id, v.sent_at))
        elif isinstance(v, HardBounce):
            continue
        elif v.channel == "STOP_KEYWORD" and v.campaign_id is None:
            stops.append((part, off, v))
    out = []
    for part, off, u in stops:
        first: dict[str, int] = {}
        for p, o, _, mid, sent_at in sends.get(u.phone, []):
            first.setdefault(mid, o)
        late = [
            mid
            for mid, o in first.items()
            if o > off and any(m == mid and sa <= u.at for _, _, _, m, sa in sends[u.phone])
        ]
        if late:
            out.append(f"STOP {u.event_id} at phone-events[{part}]@{off} came before the index of {late}")
    return out or ["every STOP came after the sends it could be attributed to: a phone state lost an index"]
