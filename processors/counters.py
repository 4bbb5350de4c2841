"""Per-campaign counters of one partition, derived from message states.

Counters are never the source of truth: they are a sum of per-message contributions, kept
incrementally (subtract the old contribution, add the new) and rebuilt from the message
states after any recovery. That is what keeps a crash from counting an event twice.
Credits are summed as integer micro-credits so that the total does not depend on the order
of additions.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import NamedTuple

from . import catalog
from .message_fold import MessageState, StatusView
from .records import MessageCounts

MICRO = 1_000_000

#: Contract §11: the upper bounds (seconds) of the time-to-delivery buckets, then ``gt_``.
DELIVERY_BOUNDS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200)
DELIVERY_BUCKETS = tuple(f"le_{b}" for b in DELIVERY_BOUNDS) + (f"gt_{DELIVERY_BOUNDS[-1]}",)
#: The key of a sent message whose MessageSent has no provider (or operator).
UNKNOWN_KEY = "unknown"


_BOUNDS_MS = tuple(b * 1000 for b in DELIVERY_BOUNDS)


def delivery_bucket(ms: int) -> str:
    """The bucket of a time to delivery in ms (a negative one, clocks apart, is ``le_5``)."""
    return DELIVERY_BUCKETS[bisect_left(_BOUNDS_MS, ms)]


class Contribution(NamedTuple):
    campaign_id: str
    sent: int
    not_sent_reason: str | None
    status: str
    credits_micro: int
    n_sends: int
    n_receipts: int
    delivery: str | None  # the time-to-delivery bucket of a DELIVERED message
    provider: str | None  # a sent message's provider (UNKNOWN_KEY when missing); None: not sent
    operator: str | None


def contribution(state: MessageState, v: StatusView | None, insights: bool = True) -> Contribution | None:
    """``insights=False`` leaves contract §11's figures out (to measure what they cost)."""
    if v is None or state.send is None:
        return None
    send = state.send
    is_sent = send.outcome != "NOT_SENT"
    delivery = provider = operator = None
    if insights:
        if v.status == catalog.DELIVERED:
            delivery = delivery_bucket(v.status_at - send.sent_at)
        if is_sent:
            provider, operator = send.provider or UNKNOWN_KEY, send.operator or UNKNOWN_KEY
    return Contribution(
        send.campaign_id,
        1 if is_sent else 0,
        None if is_sent else (send.not_sent_reason or "OTHER"),
        v.status,
        round(send.credits * MICRO) if is_sent else 0,
        len(state.send_ids),
        len(state.receipt_ids),
        delivery,
        provider,
        operator,
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
    delivery_seconds: dict[str, int] = field(default_factory=dict)
    by_provider: dict[str, dict[str, int]] = field(default_factory=dict)
    by_operator: dict[str, dict[str, int]] = field(default_factory=dict)

    def apply(self, c: Contribution, sign: int) -> None:
        self.sent += sign * c.sent
        if c.not_sent_reason is not None:
            self.not_sent += sign
            _bump(self.not_sent_by_reason, c.not_sent_reason, sign)
        _bump(self.status_counts, c.status, sign)
        self.credits_micro += sign * c.credits_micro
        self.n_sends += sign * c.n_sends
        self.n_receipts += sign * c.n_receipts
        if c.delivery is not None:
            _bump(self.delivery_seconds, c.delivery, sign)
        if c.provider is not None:
            _bump2(self.by_provider, c.provider, c.status, sign)
        if c.operator is not None:
            _bump2(self.by_operator, c.operator, c.status, sign)

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
        if old.delivery != new.delivery:
            if old.delivery is not None:
                _bump(self.delivery_seconds, old.delivery, -1)
            if new.delivery is not None:
                _bump(self.delivery_seconds, new.delivery, +1)
        if old.status != new.status or old.provider != new.provider or old.operator != new.operator:
            _move2(self.by_provider, old.provider, old.status, new.provider, new.status)
            _move2(self.by_operator, old.operator, old.status, new.operator, new.status)

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
            dict(self.delivery_seconds),
            {k: dict(v) for k, v in self.by_provider.items()},
            {k: dict(v) for k, v in self.by_operator.items()},
        )


def _bump(d: dict[str, int], k: str, n: int) -> None:
    v = d.get(k, 0) + n
    if v:
        d[k] = v
    else:
        d.pop(k, None)


def _move2(d: dict[str, dict[str, int]], old: str | None, old_status: str, new: str | None, status: str) -> None:
    """One message from (old, old_status) to (new, status) in a breakdown (None: not there),
    inline: the hot path of a status change (most keep their provider and operator)."""
    if old is not None:
        inner = d[old]
        v = inner[old_status] - 1
        if v:
            inner[old_status] = v
        else:
            del inner[old_status]
            if not inner:
                del d[old]
    if new is not None:
        counts = d.get(new)
        if counts is None:
            counts = d[new] = {}
        counts[status] = counts.get(status, 0) + 1


def _bump2(d: dict[str, dict[str, int]], k: str, status: str, n: int) -> None:
    inner = d.get(k)
    if inner is None:
        inner = d[k] = {}
    _bump(inner, status, n)
    if not inner:
        del d[k]


#: Contract §11: at most this many providers (operators) per campaign, the rest as ``other``.
BREAKDOWN_KEYS = 50
OTHER_KEY = "other"


def capped(merged: dict[str, dict[str, int]], limit: int = BREAKDOWN_KEYS) -> dict[str, dict[str, int]]:
    """The ``limit`` keys with the most messages (ties: the smaller key), the others summed
    under ``other``: a function of the merged counts alone, so of the set of events, whatever
    the order they came in (a key named ``other`` by the platform is merged into it)."""
    if len(merged) <= limit and OTHER_KEY not in merged:
        return merged
    ranked = sorted((k for k in merged if k != OTHER_KEY), key=lambda k: (-sum(merged[k].values()), k))
    out = {k: merged[k] for k in ranked[:limit]}
    rest: dict[str, int] = {}
    for k in [*ranked[limit:], *([OTHER_KEY] if OTHER_KEY in merged else [])]:
        for status, n in merged[k].items():
            rest[status] = rest.get(status, 0) + n
    if rest:
        out[OTHER_KEY] = rest
    return out


def rates(sent: int, status_counts: dict[str, int], unsubscribed: int) -> dict[str, float]:
    """Contract §6: fractions of ``sent``; 0 when nothing was sent."""
    if sent <= 0:
        return {name: 0.0 for name in catalog.RATE_NAMES}
    out = {name: sum(status_counts.get(s, 0) for s in nums) / sent for name, nums in catalog.RATE_NUMERATORS.items()}
    out["unsubscribe"] = unsubscribed / sent
    return out
