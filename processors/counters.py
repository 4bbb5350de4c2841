"""Per-campaign counters of one partition, derived from message states.

Counters are never the source of truth: they are a sum of per-message contributions, kept
incrementally (subtract the old contribution, add the new) and rebuilt from the message
states after any recovery. That is what keeps a crash from counting an event twice.
Credits are summed as integer micro-credits so that the total does not depend on the order
of additions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from . import catalog
from .message_fold import MessageState, StatusView
from .records import MessageCounts

MICRO = 1_000_000


class Contribution(NamedTuple):
    campaign_id: str
    sent: int
    not_sent_reason: str | None
    status: str
    credits_micro: int
    n_sends: int
    n_receipts: int


def contribution(state: MessageState, v: StatusView | None) -> Contribution | None:
    if v is None or state.send is None:
        return None
    send = state.send
    is_sent = send.outcome != "NOT_SENT"
    return Contribution(
        send.campaign_id,
        1 if is_sent else 0,
        None if is_sent else (send.not_sent_reason or "OTHER"),
        v.status,
        round(send.credits * MICRO) if is_sent else 0,
        len(state.send_ids),
        len(state.receipt_ids),
    )


@dataclass
class CampaignCounters:
    sent: int = 0
    not_sent: int = 0
    not_sent_by_reason: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    credits_micro: int = 0
    n_sends: int = 0
    n_receipts: int = 0
    first_sent_at: int | None = None
    last_event_at: int | None = None

    def apply(self, c: Contribution, sign: int) -> None:
        self.sent += sign * c.sent
        if c.not_sent_reason is not None:
            self.not_sent += sign
            _bump(self.not_sent_by_reason, c.not_sent_reason, sign)
        _bump(self.status_counts, c.status, sign)
        self.credits_micro += sign * c.credits_micro
        self.n_sends += sign * c.n_sends
        self.n_receipts += sign * c.n_receipts

    def move(self, old: Contribution, new: Contribution) -> None:
        """``apply(old, -1)`` then ``apply(new, +1)`` for one campaign's message, in one pass:
        most events only change a message's event counts, sometimes its status."""
        self.sent += new.sent - old.sent
        if old.not_sent_reason != new.not_sent_reason:
            if old.not_sent_reason is not None:
                self.not_sent -= 1
                _bump(self.not_sent_by_reason, old.not_sent_reason, -1)
            if new.not_sent_reason is not None:
                self.not_sent += 1
                _bump(self.not_sent_by_reason, new.not_sent_reason, +1)
        if old.status != new.status:
            _bump(self.status_counts, old.status, -1)
            _bump(self.status_counts, new.status, +1)
        self.credits_micro += new.credits_micro - old.credits_micro
        self.n_sends += new.n_sends - old.n_sends
        self.n_receipts += new.n_receipts - old.n_receipts

    def see_times(self, sent_at: int | None, event_time: int) -> None:
        # min/max over the set of events: monotone, so never undone.
        if sent_at is not None and (self.first_sent_at is None or sent_at < self.first_sent_at):
            self.first_sent_at = sent_at
        if self.last_event_at is None or event_time > self.last_event_at:
            self.last_event_at = event_time

    def counts(self) -> MessageCounts:
        """A frozen copy, for a partial."""
        return MessageCounts(
            self.sent,
            self.not_sent,
            dict(self.not_sent_by_reason),
            dict(self.status_counts),
            self.credits_micro,
            self.first_sent_at,
            self.last_event_at,
        )


def _bump(d: dict[str, int], k: str, n: int) -> None:
    v = d.get(k, 0) + n
    if v:
        d[k] = v
    else:
        d.pop(k, None)


def rates(sent: int, status_counts: dict[str, int], unsubscribed: int) -> dict[str, float]:
    """Contract §6: fractions of ``sent``; 0 when nothing was sent."""
    if sent <= 0:
        return {name: 0.0 for name in catalog.RATE_NAMES}
    out = {name: sum(status_counts.get(s, 0) for s in nums) / sent for name, nums in catalog.RATE_NUMERATORS.items()}
    out["unsubscribe"] = unsubscribed / sent
    return out
