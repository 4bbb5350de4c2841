#!/usr/bin/env python3
"""What the input placement check and the forwarding of misplaced inputs cost, without a broker.

    .venv/bin/python -m bench.partitioning [--messages 10000] [--repeat 9]

The production topology (``processors.topology``) in the in-memory driver
(``processors.driver``), stores holding encoded states as RocksDB does, on the simulator's
day (sends, receipts, launches, then the unsubscribes). Each configuration is run
``--repeat`` times, interleaved (a, b, c, a, b, c, ...) so that the machine's drift hits
all alike, garbage collection off; the figure is the median process CPU time, printed as
a ratio against ``trust`` on correctly placed input measured in the same run:

- ``unchecked``: ``trust`` with the check taken out (the topology before it existed);
- ``trust``: no forwarding (the placement check still runs: it is how misplaced input is
  detected, whatever the mode);
- ``auto``, correctly placed input: the check finds nothing, nothing is forwarded;
- ``auto``, every receipt placed by CRC32: the misplaced receipts take the extra hop
  through the rerouted-messages log (encode, append, decode, fold);
- ``repartition``: every send and receipt takes it.

Also the check alone: one murmur2 of the key per record of the day, each key seen for the
first time (in the worker the MessageStatus of the same message id then finds it among the
recent keys, ``processors.partitioner``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from driving import CODEC, NAMES, RECORD_OF, driver  # noqa: E402

from processors import partitioner, state_codec  # noqa: E402
from processors.driver import Driver, PartitionStore  # noqa: E402
from processors.partitioner import PARTITIONERS, Partitioner, partition_for  # noqa: E402
from processors.topology import Stores  # noqa: E402
from simulator.scenario import generate  # noqa: E402

PARTITIONS = 4
K = TypeVar("K")
TOPIC = {"sms.campaigns": NAMES.campaigns, "sms.message-sent": NAMES.message_sent, "sms.dlr": NAMES.dlr}


def encoded_stores() -> Stores:
    return Stores(
        PartitionStore(state_codec.encode_message, state_codec.decode_message),
        PartitionStore(state_codec.encode_phone, state_codec.decode_phone),
        PartitionStore(state_codec.encode_campaign, state_codec.decode_campaign),
    )


def day(messages: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, Avro value) of the simulator's day, in publishing order."""
    sc = generate(seed, messages, 4)
    out = []
    for e in (*sc.phase1, *sc.phase2):
        topic = TOPIC.get(e.topic, NAMES.unsubscribes)
        out.append((topic, e.key.encode(), CODEC.encode(RECORD_OF[topic], e.value)))
    return out


def run_once(records: list, mode: str, place_dlr: Partitioner | None, insights: bool = True) -> tuple[float, Driver]:
    partitioner._RECENT.clear()
    d = driver(PARTITIONS, encoded_stores(), partitioning="trust" if mode == "unchecked" else mode, insights=insights)
    if mode == "unchecked":  # the topology before the check: what detection itself costs
        d.topology._split = lambda partition, records: (list(records), [])  # type: ignore[method-assign]
    t0 = time.process_time()
    for i, (topic, key, value) in enumerate(records):
        d.produce(topic, key, value, place_dlr if topic == NAMES.dlr else None)
        if i % 500 == 499:
            d.drain()
    d.drain()
    return time.process_time() - t0, d


def check_alone(records: list, repeat: int) -> float:
    """µs per record of the placement test itself."""
    keys = [(key, partition_for(key, PARTITIONS)) for _, key, _ in records]
    best = float("inf")
    for _ in range(repeat):
        partitioner._RECENT.clear()  # cold: every key hashed once
        t0 = time.process_time()
        misplaced = [k for k, p in keys if partition_for(k, PARTITIONS) != p]
        best = min(best, time.process_time() - t0)
        assert not misplaced
    return best / len(keys) * 1e6


def parse_day(doc: str, argv: list[str] | None) -> tuple[argparse.Namespace, list[tuple[str, bytes, bytes]]]:
    """The options every in-process benchmark of the day takes, and that day's records."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    logging.getLogger("smstally").setLevel(logging.ERROR)  # the check's once-a-minute warning
    return args, day(args.messages, args.seed)


def interleaved(
    repeat: int, runs: Mapping[K, Callable[[], tuple[float, Driver]]], keep: Callable[[K, Driver], None]
) -> dict[K, list[float]]:
    """Each run ``repeat`` times, interleaved (a, b, a, b, ...) so that the machine's drift
    hits all alike, garbage collection off; ``keep`` reads what it needs of each driver."""
    times: dict[K, list[float]] = {name: [] for name in runs}
    gc.disable()
    try:
        for _ in range(repeat):
            for name, run in runs.items():
                seconds, d = run()
                times[name].append(seconds)
                keep(name, d)
                del d
                gc.collect()
    finally:
        gc.enable()
    return times


def main(argv: list[str] | None = None) -> int:
    args, records = parse_day(__doc__ or "", argv)
    configs = {
        "trust": ("trust", None),
        "unchecked": ("unchecked", None),
        "auto": ("auto", None),
        "auto, CRC32 receipts": ("auto", PARTITIONERS["crc32"]),
        "repartition": ("repartition", None),
    }
    forwarded: dict[str, int] = {}

    def keep(name: str, d: Driver) -> None:
        forwarded[name] = d.topology.rerouted

    runs = {name: functools.partial(run_once, records, mode, place) for name, (mode, place) in configs.items()}
    times = interleaved(args.repeat, runs, keep)
    events = len(records)
    base = statistics.median(times["trust"])
    print(f"{events} input events ({args.messages} messages), {PARTITIONS} partitions, median of {args.repeat}")
    print(f"{'configuration':<24}{'CPU s':>8}{'events/CPU-s':>14}{'vs trust':>10}{'forwarded/event':>17}")
    for name in configs:
        t = statistics.median(times[name])
        print(f"{name:<24}{t:8.3f}{events / t:14,.0f}{base / t:9.3f}x{forwarded[name] / events:17.2f}")
    us = check_alone(records, args.repeat)
    print(f"the placement check alone: {us:.2f} µs per record ({us * events / 1e6 / base:.1%} of trust's CPU time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
