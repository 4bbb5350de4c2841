"""Readiness: whether this worker has folded the backlog its partitions had when it got them.

Kept apart from the pipeline because it only reads the consumer's positions: it decides
``/health/ready`` and when re-publishing stats after a recovery is safe.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import faust
from faust.types import TP

from .adapters import faust_internals
from .consumer import BatchConsumer


class CatchUp:
    """Whether the worker has processed the backlog its partitions had when it got them.

    A partition's target is the high watermark of the first fetch after the assignment
    (everything in the log at that moment, hence everything any earlier owner could have
    folded); it is caught up once the offset processed reaches it. Used for readiness, and
    to hold back re-publishing stats until a replay has brought the state back where it was.
    Reading the watermark from fetches avoids extra ListOffsets round trips in recovery.
    """

    def __init__(self, app: faust.App):
        self.app = app
        self.targets: dict[TP, int | None] = {}
        self.asked: dict[TP, float] = {}  # when the coordinator was last asked (see lagging)

    def reset(self) -> None:
        self.targets.clear()
        self.asked.clear()

    def track(self, *topics: str) -> None:
        for tp in self.app.consumer.assignment():
            if tp.topic in topics:
                self.targets.setdefault(tp, None)

    async def lagging(self, topic: str | None = None) -> dict[str, str]:
        """Partitions still short of their target: "topic[p]" -> "position/target"."""
        consumer = cast(BatchConsumer, self.app.consumer)
        assigned = consumer.assignment()  # a later rebalance may have moved a target away
        out = {}
        if consumer.seek_pending:
            # Recovery tracks partitions before its seek to the committed offsets: until that
            # seek, no offset says where the restored state stands. Taking the committed one
            # then let a campaign state restored behind it pass for caught up and publish an
            # older stats version than already out (crash test, 12-02: "stats version went
            # back from 322 to 230").
            return {
                f"{tp.topic}[{tp.partition}]": "seeking"
                for tp in self.targets
                if tp in assigned and (topic is None or tp.topic == topic)
            }
        for tp, target in list(self.targets.items()):  # a rebalance may change it while we await
            if (topic is not None and tp.topic != topic) or tp not in assigned:
                continue
            if target is None:
                target = consumer.highwater(tp)
                if target is None:  # not fetched yet since the assignment
                    out[f"{tp.topic}[{tp.partition}]"] = "?/?"
                    continue
                self.targets[tp] = target
            pos = consumer.next_offset(tp)
            if pos is None:
                # Nothing processed since assignment. Faust's read offset is the committed
                # offset after its post-recovery seek; when that seek was cut short by another
                # rebalance, the last commit it knows of. Never the consumer's position: that
                # call waits in the consumer thread until the partition has a valid position,
                # which a paused partition may never get, and two such waits occupy every
                # worker of the thread's call queue, so no fetch or seek runs again.
                pos = faust_internals.read_offset(consumer, tp)
                if pos is None:
                    pos = faust_internals.committed_offset(consumer, tp)
                if pos is None:
                    # Neither known: the seek after recovery was cut short by another
                    # rebalance before it reached this partition. The consumer then learns
                    # the next offset (the committed one, or the log start when nothing is
                    # committed) from the broker, and from then on its guard and stall check
                    # keep the partition moving.
                    pos = await self._learn(consumer, tp)
            if pos < target:
                out[f"{tp.topic}[{tp.partition}]"] = f"{pos}/{target}"
        return out

    async def _learn(self, consumer: BatchConsumer, tp: TP) -> int:
        now = time.monotonic()
        if now < self.asked.get(tp, 0.0) + 1.0:  # at most once a second per partition
            return 0
        self.asked[tp] = now
        try:
            offset = await asyncio.wait_for(consumer.learn_next_offset(tp), 1.0)
        except Exception:  # noqa: BLE001 - a rebalance or a slow coordinator: asked again later
            return 0
        return offset or 0

    async def caught_up(self, topic: str | None = None) -> bool:
        return not await self.lagging(topic)

    def lag(self) -> int:
        """Records fetched-known but not yet processed, now (the consumer lag of this worker)."""
        consumer = cast(BatchConsumer, self.app.consumer)
        total = 0
        for tp in consumer.assignment():
            if tp.topic.endswith("-changelog"):
                continue
            hw = consumer.highwater(tp)
            pos = consumer.next_offset(tp)
            if pos is None:
                pos = faust_internals.read_offset(consumer, tp) or 0
            if hw is not None and hw > pos:
                total += hw - pos
        return total
