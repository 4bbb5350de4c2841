"""Readiness when the seek after recovery never reached a partition (crash test, 12-02:
"sms.unsubscribes[1]": "0/2" for ever on a partition whose two records an earlier owner had
processed). CatchUp then has the consumer learn the committed offset from the coordinator
(held as the partition's next offset once known), at most once a second while there is none. The consumer here is a stand-in for the one
attribute set readiness reads; the integration side is the crash test."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.readiness import CatchUp

TPX = TP("sms.unsubscribes", 1)


class Consumer:
    def __init__(self, committed: int | None):
        self.answer = committed
        self.asked = 0
        self.learned: dict = {}
        self._read_offset: dict = {}
        self._committed_offset: dict = {}
        self.seek_pending = False

    def assignment(self) -> set:
        return {TPX}

    def highwater(self, tp: TP) -> int:
        return 2

    def next_offset(self, tp: TP) -> int | None:
        return self.learned.get(tp)

    async def learn_next_offset(self, tp: TP) -> int | None:
        self.asked += 1
        if self.answer is not None:
            self.learned[tp] = self.answer
        return self.answer


def catchup(consumer: Consumer) -> CatchUp:
    c = CatchUp(SimpleNamespace(consumer=consumer))  # type: ignore[arg-type]
    c.track(TPX.topic)
    return c


def test_a_partition_nobody_sought_is_caught_up_at_its_committed_offset():
    consumer = Consumer(committed=2)
    c = catchup(consumer)
    assert asyncio.run(c.lagging()) == {}
    assert asyncio.run(c.lagging()) == {} and consumer.asked == 1  # held once known


def test_without_a_commit_it_lags_and_the_coordinator_is_asked_at_most_once_a_second():
    consumer = Consumer(committed=None)
    c = catchup(consumer)

    async def twice() -> tuple[dict, dict]:
        return await c.lagging(), await c.lagging()

    first, second = asyncio.run(twice())
    assert first == second == {"sms.unsubscribes[1]": "0/2"}
    assert consumer.asked == 1


def test_a_known_read_offset_is_used_before_asking():
    consumer = Consumer(committed=2)
    consumer._read_offset[TPX] = 1
    c = catchup(consumer)
    assert asyncio.run(c.lagging()) == {"sms.unsubscribes[1]": "1/2"}
    assert consumer.asked == 0


def test_before_the_seek_after_recovery_every_tracked_partition_lags_whatever_is_committed():
    # Recovery tracks partitions before it seeks: the committed offset alone then let a
    # campaign state restored behind its commit pass for caught up (12-02, "stats version
    # went back from 322 to 230").
    consumer = Consumer(committed=2)
    consumer.seek_pending = True
    c = catchup(consumer)
    assert asyncio.run(c.lagging()) == {"sms.unsubscribes[1]": "seeking"}
    assert asyncio.run(c.lagging("sms.dlr")) == {}
    assert consumer.asked == 0
    consumer.seek_pending = False
    assert asyncio.run(c.lagging()) == {}
