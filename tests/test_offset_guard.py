"""The offset guard alone (``streams.offset_guard``): pure, no Faust, no broker.

It knows each partition's next expected offset; a batch starting later makes it ask for a
seek back, and only the same gap found again after that seek is accepted as real.
"""

from __future__ import annotations

from typing import NamedTuple

from streams.offset_guard import OffsetGuard


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    offset: int


T = TP("sms.dlr", 0)
U = TP("sms.dlr", 1)


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


def offsets(admitted: tuple) -> tuple[list[int], int | None]:
    records, seek = admitted
    return [r.offset for r in records], seek


def guard_at(offset: int, tp: TP = T) -> OffsetGuard[TP]:
    g: OffsetGuard[TP] = OffsetGuard()
    g.sought(tp, offset)
    return g


def test_the_next_offset_is_unknown_until_told():
    g: OffsetGuard[TP] = OffsetGuard()
    assert g.next_offset(T) is None


def test_a_batch_starting_at_the_next_offset_is_admitted_whole():
    g = guard_at(10)
    assert offsets(g.admit(T, recs(10, 11, 12))) == ([10, 11, 12], None)


def test_processing_moves_the_next_offset_past_the_last_record():
    g = guard_at(10)
    g.processed(T, 12)
    assert g.next_offset(T) == 13


def test_records_already_processed_are_trimmed_and_an_old_batch_dropped():
    g = guard_at(12)
    assert offsets(g.admit(T, recs(10, 11, 12, 13))) == ([12, 13], None)
    assert offsets(g.admit(T, recs(8, 9))) == ([], None)
    assert offsets(g.admit(T, recs(11))) == ([], None)


def test_a_batch_starting_later_asks_for_a_seek_back_and_is_dropped():
    g = guard_at(10)
    assert offsets(g.admit(T, recs(14, 15))) == ([], 10)
    g.sought(T, 10)
    assert offsets(g.admit(T, recs(10, 11))) == ([10, 11], None)  # the re-fetch has them


def test_the_same_gap_after_the_seek_back_is_real_and_accepted():
    g = guard_at(10)
    assert offsets(g.admit(T, recs(14, 15))) == ([], 10)
    g.sought(T, 10)
    assert offsets(g.admit(T, recs(14, 15))) == ([14, 15], None)  # e.g. transaction markers
    g.processed(T, 15)
    assert g.next_offset(T) == 16


def test_a_different_gap_after_the_seek_back_seeks_back_again():
    g = guard_at(10)
    assert (
        offsets(
            g.admit(
                T,
                recs(
                    14,
                ),
            )
        )[1]
        == 10
    )
    assert (
        offsets(
            g.admit(
                T,
                recs(
                    12,
                ),
            )
        )[1]
        == 10
    )  # not the gap seen before: seek again
    assert offsets(
        g.admit(
            T,
            recs(
                12,
            ),
        )
    ) == ([12], None)


def test_a_revoked_partition_forgets_its_position_and_its_gap():
    g = guard_at(10)
    g.sought(U, 5)
    g.admit(T, recs(14))
    g.revoked({T})
    assert g.next_offset(T) is None and g.next_offset(U) == 5
    g.sought(T, 10)
    assert offsets(g.admit(T, recs(14))) == ([], 10)  # the earlier seek back is forgotten


def test_an_assignment_forgets_every_position():
    g = guard_at(10)
    g.restored_up_to(T, 3)
    g.assigned()
    assert g.positions() == {}
    assert g.committed(T, 10) is None  # the restored mark was forgotten too
    assert g.next_offset(T) == 10


def test_a_state_restored_behind_its_commit_is_replayed_from_its_mark():
    g: OffsetGuard[TP] = OffsetGuard()
    g.restored_up_to(T, 40)
    assert g.committed(T, 120) == 40  # the consumer seeks there (and tells ``sought``)
    assert g.next_offset(T) is None


def test_a_state_at_or_past_its_commit_resumes_at_the_commit():
    for mark in (120, 150):
        g: OffsetGuard[TP] = OffsetGuard()
        g.restored_up_to(T, mark)
        assert g.committed(T, 120) is None
        assert g.next_offset(T) == 120


def test_a_partition_without_a_restored_state_resumes_at_its_commit():
    g: OffsetGuard[TP] = OffsetGuard()
    assert g.committed(T, 120) is None and g.next_offset(T) == 120


def test_stall_checks_run_at_most_once_a_second():
    g: OffsetGuard[TP] = OffsetGuard()
    assert g.check_due(100.0)
    assert not g.check_due(100.5)
    assert g.check_due(101.0)


def test_a_partition_without_progress_below_its_highwater_is_a_stall_after_stall_s():
    g = guard_at(10)
    g.stall_s = 5.0
    hw = {T: 20}.get
    assert g.stalls(100.0, {T}, hw) == []  # first seen: timed from now
    assert g.stalls(104.0, {T}, hw) == []
    [stall] = g.stalls(105.0, {T}, hw)
    assert (stall.tp, stall.next_offset, stall.highwater, stall.seconds) == (T, 10, 20, 5.0)
    assert g.stalls(106.0, {T}, hw) == []  # timed again after being reported


def test_progress_caught_up_or_a_paused_partition_is_no_stall():
    g = guard_at(10)
    g.stall_s = 5.0
    assert g.stalls(100.0, {T}, {T: 20}.get) == []
    g.processed(T, 11)  # progress: timed again from now
    assert g.stalls(105.0, {T}, {T: 20}.get) == []
    assert g.stalls(109.0, {T}, {T: 20}.get) == []
    assert g.stalls(110.0, {T}, {T: 20}.get) != []
    g.stalls(111.0, {T}, {T: 20}.get)
    assert g.stalls(120.0, {T}, {T: 12}.get) == []  # caught up with the highwater
    assert g.stalls(130.0, set(), {T: 20}.get) == []  # not active (paused)
    assert g.stalls(140.0, {T}, {}.get) == []  # no highwater known
