#!/usr/bin/env python3
"""Long crash soak, by hand: more kills, more events than the CI crash test.

    .venv/bin/python scripts/crash_soak.py --kills 40 --messages 20000 --rounds 3

Each round starts a fresh embedded broker and a group of workers, streams a messy day while
SIGKILLing random workers (some restarted on a wiped data dir), then checks every output
exactly. Prints one summary line per round and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos import run_chaos  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--wipe", type=float, default=0.3, help="probability of restarting on a wiped data dir")
    p.add_argument("--settle", type=float, default=600.0, help="seconds to wait for the figures to settle")
    p.add_argument("--keep", type=Path, help="keep each round's logs and data under this directory")
    a = p.parse_args()
    failed = 0
    for r in range(a.rounds):
        with tempfile.TemporaryDirectory(prefix="smstally-soak-") as tmp:
            where = Path(tmp) if a.keep is None else a.keep / f"round-{r + 1}"
            where.mkdir(parents=True, exist_ok=True)
            rep = run_chaos(
                where,
                workers=a.workers,
                messages=a.messages,
                kills=a.kills,
                seed=a.seed + r,
                wipe_probability=a.wipe,
                settle_timeout=a.settle,
                log=lambda m: None,
            )
        print(f"round {r + 1}/{a.rounds}: {rep.line()}", flush=True)
        for m in rep.mismatches[:20]:
            print("   ", m)
        failed += bool(rep.mismatches)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
