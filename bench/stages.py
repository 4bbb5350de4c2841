#!/usr/bin/env python3
"""Where a worker's CPU goes per event, stage by stage, without a broker.

    .venv/bin/python -m bench.stages [--messages 30000] [--repeat 5]

The end-to-end benchmark (``bench.throughput``) says how many events per CPU-second a
worker folds; this says which part of the per-event work costs what, so that a target can
be checked against what is left once everything that is not Python work is taken away.
Every stage runs the project's own code on the simulator's day (sends and receipts, in
publishing order), in this process, best of ``--repeat`` runs:

- the *ceiling work*: what the raw-client ceiling does per record (fastavro decode and a
  dict update), the baseline every figure is divided by;
- Avro decode with smstally's codec (framing and fingerprint checks included);
- validation: the decoded record into a frozen event (``from_record``);
- the message fold: ``MessageStage.process`` over an in-memory store that holds encoded
  states, as RocksDB does (so the state encode and decode are in it);
- the outputs: Avro ``MessageStatus``/``AddressBookRemoval``, the internal records' codec;
- partitioning the outputs (Kafka's murmur2);
- the phone index: ``PhoneStage.index_send`` per SUBMITTED send, the other side of the
  phone-events hop.

What it leaves out is the Kafka and storage side: aiokafka's fetch parsing and produce
requests, RocksDB reads and write batches, the changelog records, the consumer thread and
the event loop. The difference between the sum printed here and the throughput bench's
CPU-seconds per event is that side.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.throughput import fast_decoder  # noqa: E402
from processors import state_codec  # noqa: E402
from processors.events import DeliveryReceipt, MessageSent  # noqa: E402
from processors.message_stage import MessageStage  # noqa: E402
from processors.outputs import MESSAGE_STATUS, PHONE_EVENT, REMOVAL, Out  # noqa: E402
from processors.partitioner import partition_for  # noqa: E402
from processors.phone_stage import PhoneStage  # noqa: E402
from processors.records import encode_internal  # noqa: E402
from processors.status_mapping import StatusMapper  # noqa: E402
from schemas.codec import AvroCodec  # noqa: E402
from simulator.scenario import generate  # noqa: E402

MESSAGE_TOPICS = ("sms.message-sent", "sms.dlr")


class EncodedStore(dict):
    """A dict that stores what RocksDB would: the encoded state."""

    def __init__(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]):
        super().__init__()
        self.encode, self.decode = encode, decode

    def get(self, key: str, default: Any = None) -> Any:
        raw = dict.get(self, key)
        return default if raw is None else self.decode(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, self.encode(value))


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(messages: int, seed: int, repeat: int) -> tuple[int, list[tuple[str, float]]]:
    codec = AvroCodec()
    day = generate(seed=seed, messages=messages, campaigns=8)
    records = [(e.record_name, codec.encode(e.record_name, e.value)) for e in day.phase1 if e.topic in MESSAGE_TOPICS]
    n = len(records)
    ceiling_decode = fast_decoder()  # the throughput bench's ceiling decoder

    def ceiling() -> None:
        sends: dict[str, int] = {}
        status: dict[str, str] = {}
        for name, raw in records:
            v = ceiling_decode(raw)
            if name == "smstally.DeliveryReceipt":
                status[v["message_id"]] = v["status"]
            else:
                sends[v["campaign_id"]] = sends.get(v["campaign_id"], 0) + 1

    decoded: list[dict] = []

    def decode() -> None:
        decoded.clear()
        for name, raw in records:
            decoded.append(codec.decode(raw, expected=name)[1])

    events: list[Any] = []

    def validate() -> None:
        events.clear()
        for rec in decoded:
            events.append(MessageSent.from_record(rec, "FR") if "outcome" in rec else DeliveryReceipt.from_record(rec))

    outs: list[Out] = []
    mapper = StatusMapper()

    def fold() -> None:
        outs.clear()
        stage = MessageStage(0, EncodedStore(state_codec.encode_message, state_codec.decode_message), mapper)
        for ev in events:
            outs.extend(stage.process(ev))

    def fold_objects() -> None:
        stage = MessageStage(0, {}, mapper)
        for ev in events:
            stage.process(ev)

    def encode_outputs() -> None:
        for o in outs:
            if o.kind == MESSAGE_STATUS:
                codec.encode("smstally.MessageStatus", o.value)
            elif o.kind == REMOVAL:
                codec.encode("smstally.AddressBookRemoval", o.value)
            else:
                encode_internal(o.value)

    def partition() -> None:
        for o in outs:
            partition_for(o.key.encode(), 4)

    def phone_index() -> None:
        stage = PhoneStage(0, EncodedStore(state_codec.encode_phone, state_codec.decode_phone))
        for o in outs:
            if o.kind == PHONE_EVENT:
                v = o.value
                stage.index_send(v.phone, v.campaign_id, v.message_id, v.sent_at)

    rows = [("ceiling work (fastavro decode + dict update)", best_of(repeat, ceiling))]
    for label, fn in (
        ("Avro decode (codec, framing checks)", decode),
        ("validation (from_record)", validate),
        ("message fold (stage, state encode/decode)", fold),
        ("  the same, states kept as objects", fold_objects),
        ("output encoding (Avro status, internal records)", encode_outputs),
        ("output partitioning (murmur2)", partition),
        ("phone index (index_send)", phone_index),
    ):
        rows.append((label, best_of(repeat, fn)))
    return n, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--e2e-us", type=float, help="CPU us per event of the throughput bench, to show the remainder")
    args = ap.parse_args(argv)
    n, rows = measure(args.messages, args.seed, args.repeat)
    base = rows[0][1]
    print(f"{n} message events (sends and receipts), best of {args.repeat}")
    print(f"{'stage':48s} {'us/event':>9s} {'x ceiling':>10s}")
    for label, secs in rows:
        print(f"{label:48s} {secs * 1e6 / n:9.2f} {secs / base:9.2f}x")
    total = sum(secs for label, secs in rows[1:] if not label.startswith(" "))
    print(f"{'smstally domain work, sum':48s} {total * 1e6 / n:9.2f} {total / base:9.2f}x")
    print(f"one core at that cost alone: {n / total:,.0f} events/s (the ceiling work: {n / base:,.0f}/s)")
    if args.e2e_us:
        rest = args.e2e_us - total * 1e6 / n
        print(f"end to end {args.e2e_us:.1f} us/event: Kafka, RocksDB, changelog, threads {rest:.1f} us/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
