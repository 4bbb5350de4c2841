"""Keys that fall due at an event time, earliest first, holding only the keys still due.

A heap alone would keep one entry for every message ever sent until its 72 h deadline
passes (a million entries, ~150 MB); here a dict holds the keys still due (messages still
PENDING, receipts still without their send) and the heap's stale entries are dropped when
they exceed a quarter of the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

_SLACK = 4096  # stale heap entries tolerated before compacting, beyond a quarter of the live ones


class DueIndex:
    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: str) -> bool:
        return key in self._due

    def set(self, key: str, at: int) -> None:
        if self._due.get(key) != at:
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))

    def discard(self, key: str) -> None:
        # Compacting costs O(live) once per live/4 discards: cheap, and the stale entries
        # (a tuple and the key each, ~120 B) stay under a quarter of the live ones, which
        # matters when a worker catching up reads sends far ahead of their receipts.
        if self._due.pop(key, None) is not None and len(self._heap) > len(self._due) + (len(self._due) >> 2) + _SLACK:
            self._heap = [(at, k) for k, at in self._due.items()]
            heapq.heapify(self._heap)

    def pop_due(self, until: int) -> Iterator[str]:
        """The keys due at or before ``until``, earliest first, each removed as it is yielded."""
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= until:
            at, key = heapq.heappop(heap)
            if due.get(key) == at:
                del due[key]
                yield key
