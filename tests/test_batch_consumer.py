"""The consumer's position guard: never process past a record it has not processed.

Unit level: ``BatchConsumer._contiguous`` is the offset guard (``streams.offset_guard``, tested
alone in tests/test_offset_guard.py) wired to the group's committed offset and a seek; the
broker side is exercised by the crash test.
"""

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.consumer import BatchConsumer
from streams.offset_guard import OffsetGuard

T = TP("sms.dlr", 0)


def consumer(committed, log_start=0):
    c = object.__new__(BatchConsumer)
    c.guard, c.sought = OffsetGuard(), []
    c.handlers = {"sms.dlr": None}
    c.seek_pending = True  # as after an assignment

    async def _committed(tp):
        return committed

    async def log_starts(tps):
        return {tp: log_start for tp in tps}

    async def seek(tp, offset):
        c.sought.append(offset)
        c.guard.sought(tp, offset)

    c._committed, c.seek, c.log_starts = _committed, seek, log_starts
    return c


def recs(*offsets):
    return [SimpleNamespace(offset=o) for o in offsets]


def run(c, batch):
    return [r.offset for r in asyncio.run(c._contiguous(T, batch))]


def test_a_fetch_past_the_committed_offset_seeks_back_instead_of_skipping():
    c = consumer(committed=10)
    assert run(c, recs(14, 15)) == []  # 10..13 were never processed
    assert c.sought == [10]
    assert run(c, recs(10, 11, 12)) == [10, 11, 12]


def test_a_gap_still_there_after_the_seek_is_real_and_accepted():
    c = consumer(committed=10)
    assert run(c, recs(14, 15)) == []
    assert run(c, recs(14, 15)) == [14, 15]  # e.g. transaction markers: nothing between
    assert c.sought == [10]


def test_records_already_processed_are_dropped():
    c = consumer(committed=10)
    c.guard.sought(T, 12)
    assert run(c, recs(10, 11, 12, 13)) == [12, 13]
    assert run(c, recs(8, 9)) == []


def test_nothing_committed_means_processing_starts_at_the_log_start():
    c = consumer(committed=None, log_start=3)
    assert run(c, recs(3, 4)) == [3, 4]
    assert c.sought == []


def test_nothing_committed_and_a_fetch_past_the_log_start_seeks_back_to_it():
    # Records fetched before a rebalance and dropped with it: the fetch position is past
    # them, and nothing was committed. Before 12-02 the fetched batch was trusted: 0..1 lost.
    c = consumer(committed=None)
    assert run(c, recs(2, 3)) == []
    assert c.sought == [0]
    assert run(c, recs(0, 1, 2, 3)) == [0, 1, 2, 3]


def seek_after_recovery(committed, restored, log_start=0):
    """``perform_seek`` with the group's commits ``committed`` and the restored marks ``restored``."""
    c = consumer(committed=None, log_start=log_start)
    c._read_offset, c._committed_offset = {}, {}  # Faust's, written by perform_seek
    for tp, offset in restored.items():
        c.restored_up_to(tp, offset)

    async def seek_to_committed():
        return dict(committed)

    c.seek_to_committed = seek_to_committed
    asyncio.run(c.perform_seek())
    return c


def test_a_state_restored_behind_its_commit_is_replayed_from_its_mark():
    c = seek_after_recovery({T: 120}, {T: 40})
    assert c.sought == [40]
    assert c.next_offset(T) == 40


def test_a_state_at_or_past_its_commit_resumes_at_the_commit():
    # Past it: the batch after the commit was folded and written locally, but what it
    # produced may not have been delivered, so it is processed again (at least once).
    for mark in (120, 150):
        c = seek_after_recovery({T: 120}, {T: mark})
        assert c.sought == []
        assert c.next_offset(T) == 120


def test_a_partition_without_a_restored_state_resumes_at_its_commit():
    # The routers (unsubscribes, campaigns) keep no table: nothing is told about them.
    c = seek_after_recovery({T: 120}, {})
    assert c.sought == [] and c.next_offset(T) == 120


def test_a_state_with_no_mark_at_all_replays_from_the_start():
    # The pipeline tells 0 when the restored table holds nothing of a partition.
    c = seek_after_recovery({T: 120}, {T: 0})
    assert c.sought == [0] and c.next_offset(T) == 0


def test_a_partition_with_nothing_committed_is_sought_to_its_log_start_and_its_next_offset_known():
    # aiokafka seeks only to a committed offset above 0: without this seek, a fetch made
    # across the rebalance leaves the position past records never processed, and with no
    # next offset known neither the guard nor the stall check would ever bring them back
    # (crash test, 12-02: "sms.unsubscribes[1]": "0/2" for ever).
    for commit in (None, -1):
        c = seek_after_recovery({T: commit}, {}, log_start=7)
        assert c.sought == [7] and c.next_offset(T) == 7
    c = seek_after_recovery({T: 0}, {}, log_start=0)
    assert c.sought == [0] and c.next_offset(T) == 0


def test_a_partition_with_nothing_committed_and_dropped_records_is_reported_stalled():
    c = seek_after_recovery({T: None}, {})
    highwater = {T: 2}.get
    assert c.guard.stalls(0.0, {T}, highwater) == []
    (stall,) = c.guard.stalls(c.guard.stall_s, {T}, highwater)
    assert (stall.next_offset, stall.highwater) == (0, 2)


def test_topics_not_handled_in_batches_are_left_to_faust():
    other = TP("smstally-messages-changelog", 0)
    c = seek_after_recovery({other: None}, {})
    assert c.sought == [] and c.next_offset(other) is None


def test_learning_the_next_offset_of_a_partition_nobody_sought_honours_the_restored_mark():
    # Learned from the coordinator when the seek after recovery never reached the partition:
    # a state restored behind the commit must be replayed from its mark, as perform_seek does.
    c = consumer(committed=120)
    c.restored_up_to(T, 40)
    assert asyncio.run(c.learn_next_offset(T)) == 40
    assert c.sought == [40]
    c = consumer(committed=120)
    assert asyncio.run(c.learn_next_offset(T)) == 120 and c.sought == []


def test_a_seek_is_pending_from_an_assignment_until_perform_seek_completes():
    c = seek_after_recovery({T: 120}, {})
    assert c.seek_pending is False
