"""The batch consumer's offset guard: the next offset each partition must process.

Pure (no Faust, no Kafka client): the consumer (``streams.consumer``) feeds it what it
learns (committed offsets, seeks, processed batches, rebalances) and asks it what to do
with a fetched batch. Its rules:

* A batch is admitted only from the next expected offset on: records before it were
  processed already (dropped), a batch wholly before it is dropped.
* A batch that starts *later* than expected means the fetcher skipped records (a second
  rebalance cut Faust's seek to committed short): the consumer seeks back to the expected
  offset and the batch is dropped. Only when the re-fetch from there still starts at the
  same later offset is the gap accepted as real (Kafka: transaction markers, compaction).
* After a table recovery the restored state may reflect less than the committed offset:
  then processing starts from where the state ends (folds skip what they hold).
* A partition whose known records (the fetch high watermark) lie beyond its next offset,
  without progress for ``stall_s``, is reported as stalled, for a seek back.

Partitions are keys of any hashable type (the consumer uses Faust's ``TP``: ``.topic``
and ``.partition`` are used for log lines only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("smstally")


class Partition(Hashable, Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


class Record(Protocol):
    @property
    def offset(self) -> int: ...


P = TypeVar("P", bound=Partition)
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Stall(Generic[P]):
    tp: P
    next_offset: int  # where processing is stuck, and where to seek back to
    highwater: int
    seconds: float  # without progress


class OffsetGuard(Generic[P]):
    def __init__(self, stall_s: float = 5.0) -> None:
        self.stall_s = stall_s
        self._next: dict[P, int] = {}  # next offset to process, per partition
        self._jump: dict[P, tuple[int, int]] = {}  # (expected, found) of the last seek back
        self._still: dict[P, tuple[int, float]] = {}  # next offset, and since when it has not moved
        self._restored: dict[P, int] = {}  # next offset the restored state needs, per partition
        self._next_check = 0.0

    # -- what the consumer learns -------------------------------------------------------
    def revoked(self, tps: Collection[P]) -> None:
        for tp in tps:
            self._next.pop(tp, None)
            self._jump.pop(tp, None)

    def assigned(self) -> None:
        """A new assignment: positions are only known again after the seek to committed."""
        self._next.clear()
        self._jump.clear()
        self._still.clear()
        self._restored.clear()  # told again by the recovery of this assignment

    def restored_up_to(self, tp: P, next_offset: int) -> None:
        """After a table recovery: from which offset of ``tp`` the restored state needs its input."""
        self._restored[tp] = next_offset

    def committed(self, tp: P, offset: int) -> int | None:
        """The consumer sought ``tp`` to its committed ``offset``. Returns the earlier offset to
        seek back to when the restored state ends before it (then :meth:`sought` follows);
        None when processing goes on from ``offset``."""
        restored = self._restored.get(tp)
        if restored is not None and restored < offset:
            return restored
        self._next[tp] = offset
        return None

    def sought(self, tp: P, offset: int) -> None:
        """The consumer sought ``tp`` to ``offset``: the next to process."""
        self._next[tp] = offset

    def processed(self, tp: P, last: int) -> None:
        self._next[tp] = last + 1

    def next_offset(self, tp: P) -> int | None:
        """The next offset to process on ``tp``; None until known."""
        return self._next.get(tp)

    def positions(self) -> dict[P, int]:
        return dict(self._next)

    # -- what to do with a batch ----------------------------------------------------------
    def admit(self, tp: P, records: Sequence[R]) -> tuple[Sequence[R], int | None]:
        """The records of a (non-empty) fetched batch of ``tp`` not processed yet, and the
        offset to seek back to (None: no seek). The next offset must be known
        (:meth:`next_offset`; the consumer asks the committed offset first when not)."""
        expected = self._next[tp]
        first = records[0].offset
        if first > expected:
            if self._jump.get(tp) == (expected, first):
                log.info(
                    "%s[%d]: no records between %d and %d (a real gap in the log)",
                    tp.topic,
                    tp.partition,
                    expected,
                    first,
                )
            else:
                log.warning(
                    "%s[%d]: fetched from %d but %d is the next to process; seeking back",
                    tp.topic,
                    tp.partition,
                    first,
                    expected,
                )
                self._jump[tp] = (expected, first)
                return (), expected
        elif records[-1].offset < expected:
            return (), None
        elif first < expected:
            records = [r for r in records if r.offset >= expected]
        return records, None

    # -- stalls -------------------------------------------------------------------------
    def check_due(self, now: float) -> bool:
        """Whether a stall check is due (once a second); if so, the next is a second away."""
        if now < self._next_check:
            return False
        self._next_check = now + 1.0
        return True

    def stalls(self, now: float, active: Collection[P], highwater: Callable[[P], int | None]) -> list[Stall[P]]:
        """Active partitions with records beyond their next offset (``highwater``) and no
        progress for ``stall_s``; each is forgotten (timed again from now on)."""
        out = []
        for tp, nxt in list(self._next.items()):
            hw = highwater(tp)
            if hw is None or hw <= nxt or tp not in active:
                self._still.pop(tp, None)
                continue
            seen = self._still.get(tp)
            if seen is None or seen[0] != nxt:
                self._still[tp] = (nxt, now)
            elif now - seen[1] >= self.stall_s:
                self._still.pop(tp, None)
                out.append(Stall(tp, nxt, hw, now - seen[1]))
        return out
