#!/usr/bin/env python3
"""Hand-run long fuzz of bad input (contract §8); not part of ./run test.

    .venv/bin/python scripts/fuzz_soak.py                    # 10 000 examples per property
    .venv/bin/python scripts/fuzz_soak.py --examples 50000 --seeds 200
    .venv/bin/python scripts/fuzz_soak.py --broker --bad-seeds 10 --messages 5000

Runs the properties of tests/test_fuzz_validation.py with ``--examples`` examples each
(SMSTALLY_FUZZ_EXAMPLES), the deterministic generators of tests/badinput.py for
``--seeds`` seeds, and with ``--broker`` the end-to-end flavour (embedded broker, one
worker, a simulated day interleaved with the bad records of ``--bad-seeds`` seeds). Prints
one summary line: inputs tried, dead-lettered by kind, unexpected exceptions (anything but
DecodeError / InvalidEvent escaping the decode + validate step: must be 0) and property
failures (must be 0). Exit code 0 only if both are 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=10_000, help="hypothesis examples per property (>= 10 000)")
    ap.add_argument("--seeds", type=int, default=50, help="seeds of the deterministic bad-record generators")
    ap.add_argument("--broker", action="store_true", help="also run the end-to-end flavour on the embedded broker")
    ap.add_argument("--bad-seeds", type=int, default=10, help="--broker: generator seeds (~450 bad records each)")
    ap.add_argument("--messages", type=int, default=5000, help="--broker: messages in the simulated day")
    ap.add_argument("-q", "--quiet", action="store_true", help="only the summary line")
    args = ap.parse_args(argv)
    os.environ["SMSTALLY_FUZZ_EXAMPLES"] = str(args.examples)
    os.chdir(ROOT)  # hypothesis keeps its example database under .hypothesis/ here

    from tests import badinput as B
    from tests import test_fuzz_validation as F

    unexpected: list[str] = []
    failures: list[str] = []
    original = B.classify

    def counting(topic, raw, *a, **kw):
        try:
            return original(topic, raw, *a, **kw)
        except Exception as exc:  # noqa: BLE001 - exactly what the soak counts
            B.TALLY["unexpected"] += 1
            unexpected.append(f"{type(exc).__name__}: {exc}"[:300])
            raise

    B.classify = counting
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    t0 = time.monotonic()

    properties = [getattr(F, n) for n in dir(F) if n.startswith("test_") and hasattr(getattr(F, n), "hypothesis")]
    for fn in properties:
        before = B.TALLY["tried"]
        t = time.monotonic()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a property failed: report, keep going
            failures.append(f"{fn.__name__}: {type(exc).__name__}: {exc}"[:2000])
            say(traceback.format_exc())
        say(f"  {fn.__name__}: {B.TALLY['tried'] - before} inputs, {time.monotonic() - t:.1f}s")

    t = time.monotonic()
    generated = 0
    for seed in range(args.seeds):
        for it in B.bad_records(seed):
            generated += 1
            try:
                out = F.check(it.topic, it.value)
                assert (out.outcome, out.kind) == (it.outcome, it.kind), f"{it}: {out.kind}: {out.reason}"
            except AssertionError as exc:
                failures.append(f"generated seed {seed}: {exc}"[:2000])
            except Exception:  # noqa: BLE001 - counted by the wrapper already
                pass
    say(f"  generators: {generated} records from {args.seeds} seeds, {time.monotonic() - t:.1f}s")

    broker_note = ""
    if args.broker:
        broker_note = run_broker(args, B, failures, say)

    tally = B.TALLY
    kinds = {k[5:]: v for k, v in sorted(tally.items()) if k.startswith("dead:")}
    dead = sum(kinds.values())
    print(
        f"fuzz soak: {tally['tried']} inputs tried ({args.examples} examples x {len(properties)} properties, "
        f"{generated} generated), dead-lettered {dead} by kind {kinds}, accepted {tally['accepted']}, "
        f"unexpected exceptions {len(unexpected)}, property failures {len(failures)}{broker_note}, "
        f"{time.monotonic() - t0:.0f}s",
        flush=True,
    )
    for line in unexpected[:5] + failures[:5]:
        print("  " + line.replace("\n", " ")[:500])
    return 0 if not unexpected and not failures else 1


def run_broker(args, B, failures: list[str], say) -> str:
    from tests.harness import Cluster
    from tests.test_bad_input_integration import check_accepted_statuses, check_dead_letters, run_with_bad_input

    items = [it for seed in range(args.bad_seeds) for it in B.bad_records(1000 + seed)]
    bad = sum(1 for it in items if it.outcome == B.DEAD_LETTER)
    with tempfile.TemporaryDirectory(prefix="smstally-soak-") as tmp:
        cluster = Cluster(Path(tmp)).start()
        try:
            w = cluster.worker()
            w.wait_ready(90)
            t = time.monotonic()
            try:
                run = run_with_bad_input(cluster, items, seed=7, messages=args.messages, timeout=600)
            except AssertionError as exc:
                failures.append(f"broker: {exc}; log: {w.tail(20)}")
                return "; broker: the worker stalled"
            say(
                f"  broker: {len(items)} records ({bad} bad) with {args.messages} messages, {time.monotonic() - t:.1f}s"
            )
            problems = []
            if run.diff:
                problems.append("counts changed: " + "; ".join(run.diff[:5]))
            try:
                kinds = check_dead_letters(run)
                check_accepted_statuses(run)
            except AssertionError as exc:
                problems.append(f"dead letters: {exc}")
                kinds = {}
            if not (run.worker_alive and run.worker_ready):
                problems.append(f"worker alive={run.worker_alive} ready={run.worker_ready}")
            if run.crashes:
                problems.append(f"{len(run.crashes)} agent crashes, e.g. {run.crashes[0]}")
            failures.extend(f"broker: {p}" for p in problems)
            return (
                f"; broker: {bad} bad records dead-lettered {sum(kinds.values())} ({dict(sorted(kinds.items()))}), "
                f"stats equal expected after {run.elapsed:.1f}s, worker alive and ready: "
                f"{run.worker_alive and run.worker_ready}"
            )
        finally:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
