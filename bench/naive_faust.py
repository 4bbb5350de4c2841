"""The naive Faust pipeline the throughput benchmark compares smstally with.

What "just write it in Faust" would look like: one agent per input topic, every value
decoded with the project's AvroCodec, and one changelogged ``Table`` write per event (the
latest status per message, the latest launch name per campaign, the latest action per
phone), with the same broker settings as smstally (Tansu flavor: short group timeouts,
at-least-once, memory store). No validation, no stages, no outputs: the gap between this
and the raw-client ceiling is Faust's own per-event cost, and the gap between this and
smstally is what smstally's domain logic costs on top.

Run by ``bench/throughput.py`` as ``python -m bench.naive_faust`` with the usual
``SMSTALLY_BROKER`` / ``SMSTALLY_APP_ID`` / ``SMSTALLY_DATA_DIR`` / ``SMSTALLY_PARTITIONS``
(and ``SMSTALLY_TOPIC_*``) variables, plus:

- ``BENCH_NAIVE_TARGET``: events to process before reporting "done";
- ``BENCH_NAIVE_PROGRESS``: a JSON file rewritten every 0.5 s and at once when the target
  is reached: ``{"count", "first", "done"}`` (wall-clock epoch seconds), which is how the
  benchmark times it without any extra topic or port.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

from schemas.codec import AvroCodec, DecodeError
from streams.compat import tansu
from streams.config import Settings, from_env


class Progress:
    """Events processed by all agents of this process, published through a small file."""

    def __init__(self, path: Path, target: int):
        self.path, self.target = path, target
        self.count = 0
        self.first: float | None = None
        self.done: float | None = None

    def bump(self) -> None:
        if self.first is None:
            self.first = time.time()
        self.count += 1
        if self.done is None and self.count >= self.target:
            self.done = time.time()
            self.write()  # at once: the benchmark's clock stops on this

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"count": self.count, "first": self.first, "done": self.done}))
        os.replace(tmp, self.path)  # atomic: the reader never sees half a file


def build(s: Settings, progress: Progress) -> faust.App:
    """The app: same Faust settings as smstally where they matter for speed."""
    tansu.apply(s.broker_flavor)
    app = faust.App(
        s.app_id,
        broker=s.broker,
        store="memory://",
        datadir=s.data_dir,
        web_enabled=False,
        topic_partitions=s.partitions,
        topic_disable_leader=True,
        table_standby_replicas=0,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        **tansu.faust_settings(s.broker_flavor),
    )
    codec = AvroCodec()
    t = s.topics
    raw = dict(key_serializer="raw", value_serializer="raw")
    # Keyed like their source topic, so each table write stays on the event's partition.
    status = app.Table("naive-status", default=None, partitions=s.partitions)  # message_id ->
    names = app.Table("naive-campaigns", default=None, partitions=s.partitions)  # campaign_id ->
    optouts = app.Table("naive-optouts", default=None, partitions=s.partitions)  # phone ->

    def agent(topic: str, table: Any, key_field: str, value_field: str) -> None:
        async def process(stream: Any) -> None:
            async for value in stream:
                try:
                    _, rec = codec.decode(value)
                except DecodeError:
                    rec = None
                if rec is not None:
                    table[rec[key_field]] = rec[value_field]
                progress.bump()

        process.__name__ = process.__qualname__ = f"naive_{topic.replace('.', '_').replace('-', '_')}"
        app.agent(app.topic(topic, **raw), name=process.__name__)(process)

    agent(t.message_sent, status, "message_id", "outcome")
    agent(t.dlr, status, "message_id", "status")
    agent(t.campaigns, names, "campaign_id", "name")
    agent(t.unsubscribes, optouts, "phone", "action")

    @app.timer(0.5)
    async def report() -> None:
        progress.write()

    return app


def main() -> None:
    s = from_env(os.environ)
    progress = Progress(Path(os.environ["BENCH_NAIVE_PROGRESS"]), int(os.environ["BENCH_NAIVE_TARGET"]))
    progress.write()
    app = build(s, progress)
    faust.Worker(app, loglevel=s.log_level, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
