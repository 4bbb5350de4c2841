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


def consumer(committed):
    c = object.__new__(BatchConsumer)
    c.guard, c.sought = OffsetGuard(), []
    c.handlers = {"sms.dlr": None}

    async def _committed(tp):
        return committed

    async def seek(tp, offset):
        c.sought.append(offset)
        c.guard.sought(tp, offset)

    c._committed, c.seek = _committed, seek
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


def test_nothing_committed_means_the_reset_position_is_trusted():
    c = consumer(committed=None)
    assert run(c, recs(0, 1)) == [0, 1]
    assert c.sought == []


def seek_after_recovery(committed, restored):
    """``perform_seek`` with the group's commits ``committed`` and the restored marks ``restored``."""
    c = consumer(committed=None)
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
