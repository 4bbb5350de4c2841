"""When a campaign's statistics go out (contract §6): at most once per interval per
campaign, and always after its last change.

"Always after the last change" is the part that is easy to lose. The publisher awaits the
producer between choosing a campaign and sending its figures, and folds run meanwhile; a
dirty mark cleared *after* that await erased the mark of a change folded during it, and
that change was never published (seen at 1M events: the last four partials of a campaign
folded, its published figures stuck at the ones before). So a campaign leaves the dirty
set when it is taken, before anything is awaited, and a change during the send marks it
again.
"""

from __future__ import annotations


class StatsThrottle:
    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.dirty: set[str] = set()
        self._last: dict[str, float] = {}

    def mark(self, campaign_id: str) -> None:
        """The campaign's figures changed (or must be published again, after a recovery)."""
        self.dirty.add(campaign_id)

    def take_due(self, now: float) -> list[str]:
        """The dirty campaigns to publish now, no longer dirty; the others wait their turn."""
        due = [cid for cid in sorted(self.dirty) if now - self._last.get(cid, float("-inf")) >= self.interval_s]
        for cid in due:
            self.dirty.discard(cid)
            self._last[cid] = now
        return due

    def failed(self, campaign_id: str) -> None:
        """Publishing failed: dirty again, and due at once."""
        self.dirty.add(campaign_id)
        self._last.pop(campaign_id, None)

    def clear(self) -> None:
        self.dirty.clear()
