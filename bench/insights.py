#!/usr/bin/env python3
"""What contract §11's work costs, without a broker.

    .venv/bin/python -m bench.insights [--messages 10000] [--repeat 9]

The production topology in the in-memory driver, stores holding encoded states as RocksDB
does, on the simulator's day (``bench.partitioning``'s setting), with ``SMSTALLY_INSIGHTS``
on and off: the delivery-time and breakdown counters, the hard-bounce facts on the
phone-events log and the phone stage's suppressions. The runs alternate (on, off, on, ...)
with garbage collection off; the figure is the median process CPU time, on against off
measured in the same run. This is the domain's share only: in a worker it is about half of
the CPU, the rest being Kafka, RocksDB and Faust (``bench.throughput --insights on,off``).
"""

from __future__ import annotations

import functools
import statistics
import sys

from bench.partitioning import NAMES, PARTITIONS, interleaved, parse_day, run_once
from processors.driver import Driver
from processors.records import decode_phone_event


def main(argv: list[str] | None = None) -> int:
    args, records = parse_day(__doc__ or "", argv)
    phone_events: dict[bool, dict[str, int]] = {}

    def keep(insights: bool, d: Driver) -> None:
        kinds: dict[str, int] = {}
        for r in d.records(NAMES.phone_events):
            name = type(decode_phone_event(r.value)).__name__
            kinds[name] = kinds.get(name, 0) + 1
        phone_events[insights] = kinds

    runs = {insights: functools.partial(run_once, records, "auto", None, insights) for insights in (True, False)}
    times = interleaved(args.repeat, runs, keep)
    events = len(records)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"{events} input events ({args.messages} messages), {PARTITIONS} partitions, median of {args.repeat}")
    for label, t, ins in (("insights on", on, True), ("insights off", off, False)):
        kinds = phone_events[ins]
        split = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        print(
            f"{label:<14}{t:8.3f} CPU s {events / t:10,.0f} events/CPU-s   phone events "
            f"{sum(kinds.values()) / args.messages:.3f} per message ({split})"
        )
    print(f"on vs off: {off / on:.3f}x events per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
