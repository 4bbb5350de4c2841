"""The message stage: one input partition of sends and receipts, folded message by message.

It owns the message states of its partition (the store, persisted by the caller) and keeps
per-campaign counters derived from them in memory. Outputs are re-emitted when a duplicate
arrives, because a duplicate after a crash is exactly the moment an output may have been
lost while the state that caused it survived.

Duplicates: the state a duplicate finds is written again. A worker killed between writing
its local store and delivering the changelog record restarts with a local state the
changelog lacks; the replay that follows (offsets were not committed) meets only
duplicates, and without this write the changelog would never get that state, so the next
owner of the partition (or a wiped worker) would restore it without those events.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from msgspec.structs import replace

from . import catalog
from .counters import CampaignCounters, contribution
from .due import DueIndex
from .events import DeliveryReceipt, MessageSent
from .message_fold import HOUR_MS, MessageState, StatusView, fold, version, view
from .outputs import CAMPAIGN_EVENT, DEAD_LETTER, MESSAGE_STATUS, PHONE_EVENT, REMOVAL, Out
from .records import HardBounce, MessagePartial, MessageVersion, SendIndexed
from .removals import permanent_error_removal
from .status_mapping import StatusMapper

DEFAULT_PENDING_TIMEOUT_MS = 72 * HOUR_MS
DEFAULT_ORPHAN_WINDOW_MS = 24 * HOUR_MS


class MessageStage:
    def __init__(
        self,
        partition: int,
        store: MutableMapping[str, MessageState],
        mapper: StatusMapper,
        pending_timeout_ms: int = DEFAULT_PENDING_TIMEOUT_MS,
        orphan_window_ms: int = DEFAULT_ORPHAN_WINDOW_MS,
        insights: bool = True,
    ):
        """``insights``: contract §11's work (the delivery-time and breakdown counters, the
        hard-bounce facts for suppressions); off only to measure what it costs."""
        self.partition = partition
        self.insights = insights
        self.store = store
        self.mapper = mapper
        self.timeout = pending_timeout_ms
        self.orphan_window = orphan_window_ms
        self.watermark = 0
        self.counters: dict[str, CampaignCounters] = {}
        self.dirty: set[str] = set()
        self._timeouts = DueIndex()  # PENDING messages, due at sent_at + timeout
        self._orphans = DueIndex()  # messages with receipts and no send, due at the orphan window

    # -- recovery -----------------------------------------------------------------
    def rebuild(self, states: Iterable[MessageState], watermark: int | None = None) -> None:
        """Re-derive everything in memory from the partition's states (after recovery).

        The watermark is the latest event time among them; a caller that can find it in a
        cheap first pass passes it, so that the states are streamed, never all held.
        """
        if watermark is None:
            states = list(states)
            watermark = max((s.max_event_time for s in states), default=0)
        self.watermark = watermark
        self.counters, self._timeouts, self._orphans = {}, DueIndex(), DueIndex()
        for s in states:
            v = view(s, self.watermark, self.timeout)
            self._account(s, None, v, None)
            self._track(s, v)
        self.dirty = set(self.counters)

    # -- folding ------------------------------------------------------------------
    def process(self, event: MessageSent | DeliveryReceipt) -> list[Out]:
        old = self.store.get(event.message_id)
        if old is not None and old.has_seen(event.event_id):
            self.store[event.message_id] = old  # written again: see "Duplicates" above
            return self._reemit(old, isinstance(event, MessageSent))
        new = fold(old, event, self.mapper, self.partition)
        self.store[event.message_id] = new
        old_v = view(old, self.watermark, self.timeout) if old is not None else None
        new_v = view(new, self.watermark, self.timeout)
        out: list[Out] = []
        self._transition(old, old_v, new, new_v, out)
        if isinstance(event, MessageSent) and new.send is event and event.outcome == "SUBMITTED":
            out.append(self._phone_index(event))
        self._track(new, new_v)
        if event.event_time > self.watermark:
            self._advance(event.event_time, out)
        return out

    def _transition(
        self,
        old: MessageState | None,
        old_v: StatusView | None,
        new: MessageState,
        new_v: StatusView | None,
        out: list[Out],
    ) -> None:
        self._account(new, old, new_v, old_v)
        if new_v is None:
            return
        if old_v is None or old_v.status != new_v.status or old_v.error_code != new_v.error_code:
            out.append(Out(MESSAGE_STATUS, new.message_id, self._status_record(new, new_v)))
        if new_v.status == catalog.HARD_BOUNCE and (old_v is None or old_v.status != catalog.HARD_BOUNCE):
            assert new.send is not None  # a status needs a send
            out.append(Out(REMOVAL, new.send.phone, permanent_error_removal(new, new_v)))
        if self.insights and (
            new_v.status == catalog.HARD_BOUNCE or (old_v is not None and old_v.status == catalog.HARD_BOUNCE)
        ):
            self._bounce_facts(old, old_v, new, new_v, out)

    def _bounce_facts(
        self, old: MessageState | None, old_v: StatusView | None, new: MessageState, new_v: StatusView, out: list[Out]
    ) -> None:
        """What the phone stage must learn (contract §11): that the message to a phone is
        HARD_BOUNCE now, since when and from which contact and campaign, or no longer is.
        Only these changes go to the phone-events topic, not every receipt."""
        was = _hard_bounce_of(old, old_v)
        now = _hard_bounce_of(new, new_v)
        if was == now:
            return
        v = version(new, new_v)
        if was is not None and (now is None or was[0] != now[0]):  # ceased (or its send named another phone)
            out.append(_fact(new.message_id, v, False, was))
        if now is not None:
            out.append(_fact(new.message_id, v, True, now))

    def _account(
        self, new: MessageState, old: MessageState | None, new_v: StatusView | None, old_v: StatusView | None
    ) -> None:
        oc = contribution(old, old_v, self.insights) if old is not None else None
        nc = contribution(new, new_v, self.insights)
        if oc == nc:
            return
        if oc is not None and nc is not None and oc.campaign_id == nc.campaign_id:
            assert new.send is not None  # a contribution needs a send
            c = self._counters(nc.campaign_id)
            c.move(oc, nc)
            c.see_times(new.send.sent_at if nc.sent else None, new.max_event_time)
            self.dirty.add(nc.campaign_id)
            return
        if oc is not None:
            self._counters(oc.campaign_id).apply(oc, -1)
            self.dirty.add(oc.campaign_id)
        if nc is not None:
            assert new.send is not None
            c = self._counters(nc.campaign_id)
            c.apply(nc, +1)
            c.see_times(new.send.sent_at if nc.sent else None, new.max_event_time)
            self.dirty.add(nc.campaign_id)

    def _counters(self, campaign_id: str) -> CampaignCounters:
        c = self.counters.get(campaign_id)
        if c is None:
            c = self.counters[campaign_id] = CampaignCounters()
        return c

    def _track(self, s: MessageState, v: StatusView | None) -> None:
        mid = s.message_id
        if v is not None and v.status == catalog.PENDING:
            assert s.send is not None
            self._timeouts.set(mid, s.send.sent_at + self.timeout)
        else:
            self._timeouts.discard(mid)
        if s.send is None and not s.orphan_reported:
            self._orphans.set(mid, s.max_event_time + self.orphan_window)
        else:
            self._orphans.discard(mid)

    def _advance(self, watermark: int, out: list[Out]) -> None:
        """Rule 6 on event time: the partition's watermark is the latest event time folded."""
        previous, self.watermark = self.watermark, watermark
        for mid in self._timeouts.pop_due(watermark):
            s = self.store.get(mid)
            if s is None:
                continue
            before = view(s, previous, self.timeout)
            after = view(s, watermark, self.timeout)
            if before != after:
                self._transition(s, before, s, after, out)
        for mid in self._orphans.pop_due(watermark):
            s = self.store.get(mid)
            if s is None or s.send is not None or s.orphan_reported:
                continue
            self.store[mid] = replace(s, orphan_reported=True)
            out.append(
                Out(
                    DEAD_LETTER,
                    mid,
                    {
                        "error_kind": "orphan_receipt",
                        "message_id": mid,
                        "partition": self.partition,
                        "receipts": len(s.receipt_ids),
                        "reason": (
                            f"{len(s.receipt_ids)} receipt(s) for message {mid} never matched a MessageSent within "
                            f"{self.orphan_window / HOUR_MS:g} h of event time; held, and folded in if the send comes"
                        ),
                        "at": s.max_event_time,
                    },
                )
            )

    # -- outputs ------------------------------------------------------------------
    def _reemit(self, s: MessageState, send_again: bool) -> list[Out]:
        """What the state implies, again. The phone index only for a send delivered again:
        its loss in a crash means the send itself is replayed (its offset was not committed),
        whereas duplicate receipts are common and would re-send it for nothing."""
        v = view(s, self.watermark, self.timeout)
        if v is None:
            return []
        send = s.send
        assert send is not None  # a status needs a send
        out = [Out(MESSAGE_STATUS, s.message_id, self._status_record(s, v))]
        if v.status == catalog.HARD_BOUNCE:
            out.append(Out(REMOVAL, send.phone, permanent_error_removal(s, v)))
        if self.insights and s.saw_hard_bounce:  # its phone may have been told it was, or is
            where = (send.phone, v.status_at, send.contact_id, send.campaign_id)
            out.append(_fact(s.message_id, version(s, v), v.status == catalog.HARD_BOUNCE, where))
        if send_again and send.outcome == "SUBMITTED":
            out.append(self._phone_index(send))
        self.dirty.add(send.campaign_id)
        return out

    def _status_record(self, s: MessageState, v: StatusView) -> dict[str, Any]:
        send = s.send
        assert send is not None
        return {
            "message_id": s.message_id,
            "campaign_id": send.campaign_id,
            "contact_id": send.contact_id,
            "phone": send.phone,
            "status": v.status,
            "category": catalog.category(v.status),
            "error_code": v.error_code,
            "provider": v.provider,
            "sent_at": send.sent_at,
            "status_at": v.status_at,
            "version": version(s, v),
            "not_sent_reason": send.not_sent_reason,
            "phone_valid": send.phone_valid,
        }

    @staticmethod
    def _phone_index(send: MessageSent) -> Out:
        return Out(PHONE_EVENT, send.phone, SendIndexed(send.phone, send.message_id, send.campaign_id, send.sent_at))

    def flush_partials(self, now_ms: int) -> list[Out]:
        """Absolute per-campaign counters of this partition, versioned so the campaign stage
        can tell a newer partial from a stale one (componentwise: sends, receipts, watermark)."""
        out = []
        for cid in sorted(self.dirty):
            c = self.counters.get(cid)
            if c is None:
                continue
            out.append(
                Out(
                    CAMPAIGN_EVENT,
                    cid,
                    MessagePartial(
                        cid, self.partition, MessageVersion(c.n_sends, c.n_receipts, self.watermark), c.counts(), now_ms
                    ),
                )
            )
        self.dirty.clear()
        return out


#: (phone, carrier time, contact_id, campaign_id): where a hard bounce is and since when.
_Where = tuple[str, int, str | None, str]


def _hard_bounce_of(s: MessageState | None, v: StatusView | None) -> _Where | None:
    """Where a HARD_BOUNCE message is, else None."""
    if s is None or v is None or v.status != catalog.HARD_BOUNCE or s.send is None:
        return None
    return s.send.phone, v.status_at, s.send.contact_id, s.send.campaign_id


def _fact(message_id: str, version: int, in_force: bool, where: _Where) -> Out:
    phone, at, contact_id, campaign_id = where
    return Out(PHONE_EVENT, phone, HardBounce(phone, message_id, version, in_force, at, contact_id, campaign_id))
