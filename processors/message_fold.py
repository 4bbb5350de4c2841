"""Folding the events of one message into its state (contract §5).

The state is a summary of the *set* of events seen, never of their order: the chosen
send, the best final receipt (a max under a total order), the latest pending time and the
seen event ids. Every fold step is therefore commutative and idempotent, which is what
makes at-least-once delivery, replays and early receipts harmless. The status is derived
from the state (plus the event-time watermark for rule 6), not stored, so that a
timeout can never disagree with the events that a replay brings back.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from . import catalog
from .events import DeliveryReceipt, MessageSent
from .status_mapping import StatusMapper

HOUR_MS = 3_600_000


class FinalReceipt(NamedTuple):
    """Ordered so that ``max`` is rule 3: later carrier time, then precedence, then id (determinism)."""

    carrier_time: int
    rank: int
    event_id: str
    status: str
    error_code: str | None
    provider: str | None


class MessageState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Stored in the messages table (``state_codec``)."""

    message_id: str
    partition: int
    send: MessageSent | None = None
    send_ids: frozenset[str] = frozenset()
    receipt_ids: frozenset[str] = frozenset()
    best_final: FinalReceipt | None = None
    last_pending_at: int | None = None
    max_event_time: int = 0
    orphan_reported: bool = False  # receipts without a send, already reported (rule 5)
    # A HARD_BOUNCE receipt is among the receipts (a function of the set, like the rest):
    # a message that is no longer HARD_BOUNCE may have told its phone it was (contract §11),
    # so a redelivery re-sends the phone that it ceased (processors.message_stage).
    saw_hard_bounce: bool = False

    def has_seen(self, event_id: str) -> bool:
        return event_id in self.send_ids or event_id in self.receipt_ids


class StatusView(NamedTuple):
    status: str
    status_at: int
    error_code: str | None
    provider: str | None
    timed_out: bool


def _better_send(a: MessageSent | None, b: MessageSent) -> MessageSent:
    # "Once per recipient": a second, different MessageSent is an upstream anomaly; keep
    # the earliest (sent_at, event_id) so that the choice does not depend on arrival order.
    if a is None or (b.sent_at, b.event_id) < (a.sent_at, a.event_id):
        return b
    return a


def fold(
    state: MessageState | None, event: MessageSent | DeliveryReceipt, mapper: StatusMapper, partition: int = 0
) -> MessageState:
    """Return the state after ``event``; the same object when the event changes nothing."""
    if state is None:
        state = MessageState(event.message_id, partition)
    if state.has_seen(event.event_id):  # rule 1
        return state
    max_t = max(state.max_event_time, event.event_time)
    # MessageState(...) positionally rather than msgspec.structs.replace: the hot path.
    if isinstance(event, MessageSent):
        return MessageState(
            state.message_id,
            state.partition,
            _better_send(state.send, event),
            state.send_ids | {event.event_id},
            state.receipt_ids,
            state.best_final,
            state.last_pending_at,
            max_t,
            state.orphan_reported,
            state.saw_hard_bounce,
        )
    status = mapper.map(event.provider, event.status, event.error_code)
    ids = state.receipt_ids | {event.event_id}
    if status == catalog.PENDING:
        last = event.carrier_time if state.last_pending_at is None else max(state.last_pending_at, event.carrier_time)
        return MessageState(
            state.message_id,
            state.partition,
            state.send,
            state.send_ids,
            ids,
            state.best_final,
            last,
            max_t,
            state.orphan_reported,
            state.saw_hard_bounce,
        )
    cand = FinalReceipt(
        event.carrier_time, catalog.TIE_RANK[status], event.event_id, status, event.error_code, event.provider
    )
    best = cand if state.best_final is None else max(state.best_final, cand)
    return MessageState(
        state.message_id,
        state.partition,
        state.send,
        state.send_ids,
        ids,
        best,
        state.last_pending_at,
        max_t,
        state.orphan_reported,
        state.saw_hard_bounce or status == catalog.HARD_BOUNCE,
    )


def view(state: MessageState, watermark: int, pending_timeout_ms: int) -> StatusView | None:
    """The message's canonical status (rules 2–4 and 6); None while only receipts are known."""
    send = state.send
    if send is None:
        return None
    if send.outcome == "NOT_SENT":  # rule 4: final at once, receipts never change it
        return StatusView(catalog.NOT_SENT, send.sent_at, None, send.provider, False)
    best = state.best_final
    if send.outcome == "PROVIDER_ERROR":  # final at its sent_at, so rule 3 compares it
        own = FinalReceipt(
            send.sent_at, catalog.TIE_RANK[catalog.PROVIDER_ERROR], "", catalog.PROVIDER_ERROR, None, send.provider
        )
        best = own if best is None else max(best, own)
    if best is not None:
        return StatusView(best.status, best.carrier_time, best.error_code, best.provider or send.provider, False)
    deadline = send.sent_at + pending_timeout_ms
    if watermark >= deadline:  # rule 6
        return StatusView(catalog.UNKNOWN, deadline, None, send.provider, True)
    at = send.sent_at if state.last_pending_at is None else max(send.sent_at, state.last_pending_at)
    return StatusView(catalog.PENDING, at, None, send.provider, False)


def version(state: MessageState, v: StatusView | None) -> int:
    """Grows with every folded event and with a timeout, so a status never repeats a version."""
    return 2 * (len(state.send_ids) + len(state.receipt_ids)) + (1 if v is not None and v.timed_out else 0)
