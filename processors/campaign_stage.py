"""The campaign stage: per campaign, the sum of the latest partial of every source partition.

Partials are absolute counters with a version vector, so a stale or replayed partial is
recognised (it does not dominate the one held) and ignored, and a newer one replaces the
old: no delta is ever added twice. The published version is the offset of the last record
folded in the campaign's input log, so a stats record for a given version always carries
the same figures, whoever computes it and however often.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

from .counters import MICRO, capped, rates
from .records import CampaignEvent, Launch, MessagePartial, MessageVersion, Partial, Slot, UnsubscribeVersion
from .stats_throttle import StatsThrottle

SUMMARY_FIELDS = ("name", "kind", "text", "sender_id", "sms_type", "created_at", "launched_at", "launch_list_size")


@dataclass(frozen=True, slots=True)
class CampaignState:
    campaign_id: str
    last_offset: int = -1
    updated_at: int = 0
    summary: Launch | None = None
    parts: dict[Slot, Partial] = field(default_factory=dict)  # the latest partial of each (source, partition)


def _dominates(new: MessageVersion | UnsubscribeVersion, old: MessageVersion | UnsubscribeVersion) -> bool:
    return len(new) == len(old) and all(a >= b for a, b in zip(new, old, strict=True))


def fold(state: CampaignState | None, campaign_id: str, record: CampaignEvent, offset: int) -> CampaignState:
    """Fold one record of the campaign's log; records at or before ``last_offset`` are replays."""
    if state is None:
        state = CampaignState(campaign_id)
    if offset <= state.last_offset:
        return state
    if isinstance(record, Launch):
        return replace(state, last_offset=offset, updated_at=max(state.updated_at, record.at), summary=record)
    slot = record.slot
    held = state.parts.get(slot)
    if held is not None and not _dominates(record.version, held.version):
        return replace(state, last_offset=offset)  # stale: keep figures, but the offset moved on
    parts = dict(state.parts)
    parts[slot] = record
    # Never back: records of the log carry the clocks of the workers that wrote them.
    return replace(state, last_offset=offset, updated_at=max(state.updated_at, record.at), parts=parts)


def stats(state: CampaignState) -> dict[str, Any]:
    """The CampaignStats record (contract §6) for this state."""
    sent = not_sent = credits = unsub = 0
    nsr: dict[str, int] = {}
    sc: dict[str, int] = {}
    first: int | None = None
    last: int | None = None
    delivery: dict[str, int] = {}
    by_provider: dict[str, dict[str, int]] = {}
    by_operator: dict[str, dict[str, int]] = {}
    for part in state.parts.values():
        if isinstance(part, MessagePartial):
            c = part.counts
            for k, n in c.delivery_seconds.items():
                delivery[k] = delivery.get(k, 0) + n
            _merge(by_provider, c.by_provider)
            _merge(by_operator, c.by_operator)
            sent += c.sent
            not_sent += c.not_sent
            credits += c.credits_micro
            for k, n in c.not_sent_by_reason.items():
                nsr[k] = nsr.get(k, 0) + n
            for k, n in c.status_counts.items():
                sc[k] = sc.get(k, 0) + n
            if c.first_sent_at is not None and (first is None or c.first_sent_at < first):
                first = c.first_sent_at
            le = c.last_event_at
        else:
            unsub += part.unsubscribed
            le = part.last_event_at
        if le is not None and (last is None or le > last):
            last = le
    summary = state.summary
    rec: dict[str, Any] = {"campaign_id": state.campaign_id}
    rec.update({k: None if summary is None else getattr(summary, k) for k in SUMMARY_FIELDS})
    rec.update(
        {
            "version": state.last_offset + 1,
            "updated_at": state.updated_at,
            "sent": sent,
            "not_sent": not_sent,
            "not_sent_by_reason": nsr,
            "status_counts": sc,
            "unsubscribed": unsub,
            "credits": credits / MICRO,
            "rates": rates(sent, sc, unsub),
            "first_sent_at": first,
            "last_event_at": last,
            "delivery_seconds": delivery,
            "by_provider": capped(by_provider),
            "by_operator": capped(by_operator),
        }
    )
    return rec


def _merge(into: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    for key, by_status in part.items():
        inner = into.get(key)
        if inner is None:
            into[key] = dict(by_status)
        else:
            for status, n in by_status.items():
                inner[status] = inner.get(status, 0) + n


class CampaignStage:
    """The campaigns of one campaign-events partition, folded record by record.

    Like the message and phone stages it owns the states of its partition (the store,
    persisted by the caller) and keeps what it needs in memory: here the states themselves,
    read by the stats publisher. A campaign whose figures changed is marked in the worker's
    ``StatsThrottle`` (shared by all partitions: the publisher is one timer).
    """

    def __init__(self, partition: int, store: MutableMapping[str, CampaignState], throttle: StatsThrottle):
        self.partition = partition
        self.store = store
        self.throttle = throttle
        self.campaigns: dict[str, CampaignState] = {}

    def rebuild(self, states: Iterable[CampaignState]) -> None:
        """The partition's campaigns from its stored states (after recovery), every one to be
        published again: a stats record may have been lost with the crash that preceded this
        recovery (the publisher waits until the log has been replayed, contract §6)."""
        self.campaigns = {st.campaign_id: st for st in states}
        for cid in self.campaigns:
            self.throttle.mark(cid)

    def reload(self) -> None:
        """Forget what a failed batch folded: every held campaign as its store has it."""
        for cid in list(self.campaigns):
            st = self.store.get(cid)
            if st is not None:
                self.campaigns[cid] = st

    def process(self, campaign_id: str, record: CampaignEvent, offset: int) -> None:
        old = self.campaigns.get(campaign_id)
        if old is None:
            old = self.store.get(campaign_id)
        new = fold(old, campaign_id, record, offset)
        if new is old:  # a replay: written again, as in MessageStage (the changelog may lack it)
            self.store[campaign_id] = new
            return
        self.store[campaign_id] = new
        self.campaigns[campaign_id] = new
        if old is None or new.parts is not old.parts or new.summary is not old.summary:
            self.throttle.mark(campaign_id)

    def stats(self, campaign_id: str) -> dict[str, Any] | None:
        st = self.campaigns.get(campaign_id)
        return None if st is None else stats(st)
