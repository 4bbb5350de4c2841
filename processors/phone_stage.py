"""The phone stage: blacklist, unsubscribe attribution and BLACKLISTED removals, per phone.

It consumes one internal log per partition that carries both unsubscribes and the index of
sends (message stage -> phone), so the order it sees is the log's order and a replay sees
the same order again. Blacklist membership is the latest action by ``at`` (then event_id),
a function of the set; a removal is emitted when an unsubscribe moves a phone from not
blacklisted to blacklisted. Attribution of a STOP without campaign_id looks at the sends
indexed *so far* (contract §6: a send processed after the unsubscribe does not re-attribute).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import NamedTuple

import msgspec
from msgspec.structs import replace

from .events import Unsubscribe
from .message_fold import HOUR_MS
from .outputs import CAMPAIGN_EVENT, REMOVAL, SUPPRESSION, Out
from .records import HardBounce, UnsubscribePartial, UnsubscribeVersion
from .removals import blacklist_removal
from .suppressions import Bounce, Cause, InForce, in_force
from .suppressions import record as suppression_record

DEFAULT_ATTRIBUTION_WINDOW_MS = 72 * HOUR_MS
MAX_SENDS_PER_PHONE = 64  # a phone's recent sends kept for STOP attribution


class IndexedSend(NamedTuple):
    sent_at: int
    campaign_id: str
    message_id: str


class Handled(NamedTuple):
    """What an unsubscribe did, kept so that a redelivery re-emits exactly that."""

    campaign_id: str | None
    removal: bool
    at: int


class PhoneState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Stored in the phones table (``state_codec``)."""

    phone: str
    partition: int
    sends: tuple[IndexedSend, ...] = ()
    handled: tuple[tuple[str, Handled], ...] = ()  # unsubscribe event_id -> outcome, in log order
    latest: tuple[int, str, str] | None = None  # (at, event_id, action)
    contact_id: str | None = None
    # Contract §11 (appended with defaults: states written before still read).
    resubscribed: tuple[int, str] | None = None  # the latest RESUBSCRIBE (at, event_id)
    unsubscribes: tuple[Cause, ...] = ()  # the UNSUBSCRIBEs after it, in (at, event_id) order
    bounces: tuple[Bounce, ...] = ()  # each message's latest HardBounce fact
    suppression_published: bool = False  # a Suppression was published: a redelivery re-sends it

    @property
    def blacklisted(self) -> bool:
        return self.latest is not None and self.latest[2] == "UNSUBSCRIBE"

    def outcome_of(self, event_id: str) -> Handled | None:
        for eid, h in self.handled:
            if eid == event_id:
                return h
        return None

    def attributed(self) -> set[str]:
        return {h.campaign_id for _, h in self.handled if h.campaign_id is not None}

    def in_force(self) -> InForce:
        resub = self.resubscribed
        if resub is None and self.latest is not None and self.latest[2] == "RESUBSCRIBE":
            resub = self.latest[:2]  # a state written before §11
        return in_force(
            self.blacklisted,
            self.unsubscribes,
            None if resub is None else resub[0],
            self.bounces,
            None if self.latest is None else self.latest[0],
        )

    @property
    def suppression_version(self) -> int:
        return len(self.handled) + sum(b.version for b in self.bounces)


class PhoneStage:
    def __init__(
        self,
        partition: int,
        store: MutableMapping[str, PhoneState],
        attribution_window_ms: int = DEFAULT_ATTRIBUTION_WINDOW_MS,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
        suppressions: bool = True,
    ):
        """``suppressions``: publish what is in force per phone (contract §11; off only to
        measure what it costs)."""
        self.partition = partition
        self.store = store
        self.window = attribution_window_ms
        self.clock = clock
        self.suppressions = suppressions
        self.unsubscribed: dict[str, int] = {}  # campaign -> distinct phones attributed
        self.attributions: dict[str, int] = {}  # campaign -> unsubscribe events attributed (the version)
        self.last_event_at: dict[str, int] = {}
        self.dirty: set[str] = set()

    def rebuild(self, states: Iterable[PhoneState]) -> None:
        self.unsubscribed, self.attributions, self.last_event_at = {}, {}, {}
        for s in states:
            for cid in s.attributed():
                self.unsubscribed[cid] = self.unsubscribed.get(cid, 0) + 1
            for _, h in s.handled:
                if h.campaign_id is not None:
                    self.attributions[h.campaign_id] = self.attributions.get(h.campaign_id, 0) + 1
                    if h.at > self.last_event_at.get(h.campaign_id, 0):
                        self.last_event_at[h.campaign_id] = h.at
        self.dirty = set(self.unsubscribed)

    def index_send(self, phone: str, campaign_id: str, message_id: str, sent_at: int) -> None:
        s = self.store.get(phone) or PhoneState(phone, self.partition)
        if any(x.message_id == message_id for x in s.sends):
            self.store[phone] = s  # written again, as in MessageStage: the changelog may lack it
            return
        sends = list(s.sends)
        bisect.insort(sends, IndexedSend(sent_at, campaign_id, message_id))
        # Built directly rather than with replace: the hot path.
        self.store[phone] = PhoneState(
            phone,
            s.partition,
            tuple(sends[-MAX_SENDS_PER_PHONE:]),
            s.handled,
            s.latest,
            s.contact_id,
            s.resubscribed,
            s.unsubscribes,
            s.bounces,
            s.suppression_published,
        )

    def attribute(self, s: PhoneState, u: Unsubscribe) -> str | None:
        if u.action != "UNSUBSCRIBE":
            return None
        if u.campaign_id is not None:
            return u.campaign_id
        if u.channel != "STOP_KEYWORD":
            return None
        # Latest SUBMITTED send at or before the reply, at most the window earlier.
        i = bisect.bisect_right(s.sends, (u.at, "\uffff", "\uffff"))
        if i and s.sends[i - 1].sent_at >= u.at - self.window:
            return s.sends[i - 1].campaign_id
        return None

    def process_unsubscribe(self, u: Unsubscribe) -> list[Out]:
        s = self.store.get(u.phone) or PhoneState(u.phone, self.partition)
        done = s.outcome_of(u.event_id)
        if done is not None:  # a redelivery: same outputs as the first time, nothing counted again
            self.store[u.phone] = s  # written again, as in MessageStage: the changelog may lack it
            if done.campaign_id is not None:
                self.dirty.add(done.campaign_id)
            out = [Out(REMOVAL, u.phone, blacklist_removal(u, done.campaign_id))] if done.removal else []
            return self._republish(s, out)
        campaign = self.attribute(s, u)
        before = s.blacklisted
        mark = (u.at, u.event_id, u.action)
        latest = mark if s.latest is None or mark > s.latest else s.latest
        new = replace(s, latest=latest, contact_id=u.contact_id or s.contact_id, **self._causes(s, u))
        removal = u.action == "UNSUBSCRIBE" and not before and new.blacklisted
        if campaign is not None:
            if campaign not in s.attributed():
                self.unsubscribed[campaign] = self.unsubscribed.get(campaign, 0) + 1
            self.attributions[campaign] = self.attributions.get(campaign, 0) + 1
            if u.at > self.last_event_at.get(campaign, 0):
                self.last_event_at[campaign] = u.at
            self.dirty.add(campaign)
        new = replace(new, handled=s.handled + ((u.event_id, Handled(campaign, removal, u.at)),))
        out = [Out(REMOVAL, u.phone, blacklist_removal(u, campaign))] if removal else []
        return self._publish_change(s, new, out)

    def _causes(self, s: PhoneState, u: Unsubscribe) -> dict[str, object]:
        """The unsubscribe's place among the phone's causes (contract §11): a later
        RESUBSCRIBE lifts the UNSUBSCRIBEs before it; an UNSUBSCRIBE after it is in force."""
        if not self.suppressions:
            return {}
        mark = (u.at, u.event_id)
        resub = s.resubscribed
        if u.action == "RESUBSCRIBE":
            if resub is not None and mark <= resub:
                return {}
            return {"resubscribed": mark, "unsubscribes": tuple(c for c in s.unsubscribes if c[:2] > mark)}
        if resub is not None and mark < resub:
            return {}
        causes = list(s.unsubscribes)
        bisect.insort(causes, Cause(u.at, u.event_id, u.contact_id, u.campaign_id))
        return {"unsubscribes": tuple(causes)}

    def process_bounce(self, f: HardBounce) -> list[Out]:
        """A message to the phone became, or ceased to be, HARD_BOUNCE (contract §11)."""
        s = self.store.get(f.phone) or PhoneState(f.phone, self.partition)
        held = next((b for b in s.bounces if b.message_id == f.message_id), None)
        if held is not None and held.version >= f.version:  # a redelivery, or a fact overtaken by a later one
            self.store[f.phone] = s  # written again, as in MessageStage: the changelog may lack it
            return self._republish(s, [])
        bounce = Bounce(f.message_id, f.version, f.in_force, f.at, f.contact_id, f.campaign_id)
        new = replace(s, bounces=(*(b for b in s.bounces if b is not held), bounce))
        return self._publish_change(s, new, [])

    def _publish_change(self, old: PhoneState, new: PhoneState, out: list[Out]) -> list[Out]:
        """Store ``new``; a Suppression when what is in force changed."""
        if self.suppressions:
            f = new.in_force()
            if f != old.in_force():
                new = replace(new, suppression_published=True)
                out.append(self._suppression(new, f))
        self.store[new.phone] = new
        return out

    def _republish(self, s: PhoneState, out: list[Out]) -> list[Out]:
        """A redelivery: the Suppression again, in case the first was lost with a crash."""
        if self.suppressions and s.suppression_published:
            out.append(self._suppression(s, s.in_force()))
        return out

    def _suppression(self, s: PhoneState, f: InForce) -> Out:
        return Out(SUPPRESSION, s.phone, suppression_record(s.phone, f, s.suppression_version, self.clock()))

    def flush_partials(self, now_ms: int) -> list[Out]:
        out = [
            Out(
                CAMPAIGN_EVENT,
                cid,
                UnsubscribePartial(
                    cid,
                    self.partition,
                    UnsubscribeVersion(self.attributions.get(cid, 0)),
                    self.unsubscribed.get(cid, 0),
                    self.last_event_at.get(cid),
                    now_ms,
                ),
            )
            for cid in sorted(self.dirty)
        ]
        self.dirty.clear()
        return out
