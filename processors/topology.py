"""The topology: which stage owns an input record, and where each stage's outputs go.

One object, run by the Faust worker (``streams.pipeline``) and by the in-memory driver
(``processors.driver``) alike. It gets the fetched records of one partition of one topic
and a sink ``add(topic, key, value)``; it decodes and validates them, hands them to the
stage of that partition, and turns what the stage returns into encoded records of the
configured topics. The sink places a keyed record where Kafka's default partitioner puts
it (``processors.partitioner``): the worker's outbox does, and so does the driver.

    input topic          route                     stage                 outputs
    message-sent, dlr    placement check           MessageStage[p]       message-status, removals,
                         decode + validate                               phone-events (sends, hard
                                                                         bounces), dead letters
                         (misplaced: forwarded)    (none)                rerouted-messages
    rerouted-messages    decode + validate         MessageStage[p]       as message-sent and dlr
    unsubscribes         decode + validate         (none: re-keyed)      phone-events (unsubscribes)
    campaigns            decode + validate         (none: re-keyed)      campaign-events (launches)
                         (every input: the placement check, processors/placement)
    phone-events         internal records          PhoneStage[p]         removals, suppressions
    campaign-events      internal JSON             CampaignStage[p]      (stats, published by a timer)
    timers               flush_partials            Message/PhoneStage    campaign-events (partials)
                         take_due_stats            CampaignStage         campaign-stats

Inputs on another partition than murmur2 places their key (contract §1) are counted and
explained (``processors.placement``). A message input's partition decides which message
stage folds it, so under ``partitioning="auto"`` a misplaced send or receipt is forwarded,
as read, through the internal rerouted-messages topic, keyed by its message id and placed
by murmur2 like every keyed output: it arrives on the partition of its message, whose
stage folds it as if it had come in there (``repartition`` forwards every message input,
``trust`` none). The rerouted-messages topic has the message inputs' partition count
(streams.topics refuses another), so its partition p, the message inputs' partition p and
the message store's partition p are one co-partitioned unit, assigned to one worker. The
route may reorder a message's events and deliver one twice (a crash between forwarding
and commit forwards it again): the message fold is order-independent and idempotent.

What is not here is the runtime's: persisting what a batch wrote to the stores (the
caller wraps ``Route.process`` in its store's batch), shipping what went to the sink,
consumer positions and commits, metrics (``on_removal`` and ``on_dead_letter`` hooks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from schemas.codec import AvroCodec, DecodeError

from .campaign_stage import CampaignStage, CampaignState
from .events import CampaignLaunched, DeliveryReceipt, InvalidEvent, MessageSent, Unsubscribe
from .message_fold import MessageState
from .message_stage import DEFAULT_ORPHAN_WINDOW_MS, DEFAULT_PENDING_TIMEOUT_MS, MessageStage
from .outputs import DEAD_LETTER, MESSAGE_STATUS, PHONE_EVENT, REMOVAL, SUPPRESSION, Out
from .partitioner import partition_for
from .phone_stage import DEFAULT_ATTRIBUTION_WINDOW_MS, PhoneStage, PhoneState
from .phones import mask
from .placement import PARTITIONING, PlacementCheck
from .records import (
    REROUTED,
    HardBounce,
    Launch,
    Rerouted,
    SendIndexed,
    decode_campaign_event,
    decode_phone_event,
    encode_campaign_event,
    encode_internal,
    encode_phone_event,
)
from .stats_throttle import StatsThrottle
from .status_mapping import StatusMapper

log = logging.getLogger("smstally")

# Internal records (phone-events, campaign-events): compact JSON bytes.

#: Bytes a dead letter needs beside the copy of the record it reports (its other fields).
DEAD_LETTER_OVERHEAD = 4096


def _now_ms() -> int:
    return int(time.time() * 1000)


class Record(Protocol):
    """What the topology reads of a consumed record (aiokafka's, or the driver's ``LogRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


#: The sink: ``add(topic, key, value)``, a keyed record placed by its key's murmur2 partition.
Add = Callable[[str, bytes | None, bytes], object]


@dataclass(frozen=True, slots=True)
class Names:
    """The topics the topology reads and writes, as configured (contract §1 and §9)."""

    campaigns: str
    message_sent: str
    dlr: str
    unsubscribes: str
    campaign_stats: str
    message_status: str
    removals: str
    dead_letter: str
    phone_events: str
    campaign_events: str
    rerouted_messages: str
    suppressions: str


class Stores:
    """Where the stages keep their states, and how recovery reads one partition's back.

    These defaults suit plain mappings (the driver's): a partition's states are found by
    scanning them all. The worker's changelogged tables read a partition's own database.
    """

    def __init__(
        self,
        messages: MutableMapping[str, MessageState],
        phones: MutableMapping[str, PhoneState],
        campaigns: MutableMapping[str, CampaignState],
    ):
        self.messages, self.phones, self.campaigns = messages, phones, campaigns

    def message_states(self, partition: int) -> Iterable[MessageState]:
        return (s for s in self.messages.values() if s.partition == partition)

    def message_watermark(self, partition: int) -> int | None:
        """The latest event time among the partition's message states, if a cheap first pass
        can find it (then the states are streamed, never all held); None: found on rebuild."""
        return None

    def phone_states(self, partition: int) -> Iterable[PhoneState]:
        return (s for s in self.phones.values() if s.partition == partition)

    def campaign_states(self) -> Iterable[CampaignState]:
        return self.campaigns.values()


class Route(NamedTuple):
    """How the records of one topic are handled: ``process(partition, records, add)``
    returns how many of them became dead letters; ``store`` names the store the batch writes
    ("messages", "phones", "campaigns", or None); ``input`` says whether it is an input topic."""

    process: Callable[[int, Sequence[Record], Add], int]
    store: str | None
    input: bool


class PartialFlush(NamedTuple):
    """The partials one stage flushed; ``retry()`` marks them dirty again if they were not shipped."""

    stage: MessageStage | PhoneStage
    outs: list[Out]

    def retry(self) -> None:
        self.stage.dirty.update(o.key for o in self.outs)


def unsubscribe_event(u: Unsubscribe) -> bytes:
    """The phone-event an unsubscribe becomes (keyed by its E.164 phone): the event itself."""
    return encode_phone_event(u)


def launch_event(c: CampaignLaunched, at: int) -> bytes:
    """The campaign-event a launch becomes (keyed by campaign_id). ``at`` is when the summary
    came in (like a partial's), not the launch's event time: CampaignStats.updated_at is one
    clock, processing time."""
    return encode_campaign_event(Launch.of(c, at))


class Topology:
    """The stages of the partitions a worker owns, and the routes between them."""

    def __init__(
        self,
        names: Names,
        codec: AvroCodec,
        mapper: StatusMapper,
        stores: Stores,
        *,
        campaign_event_partitions: int,
        input_partitions: Mapping[str, int],
        region: str,
        stats_interval_s: float,
        max_record_bytes: int,
        pending_timeout_ms: int = DEFAULT_PENDING_TIMEOUT_MS,
        orphan_window_ms: int = DEFAULT_ORPHAN_WINDOW_MS,
        attribution_window_ms: int = DEFAULT_ATTRIBUTION_WINDOW_MS,
        clock: Callable[[], int] = _now_ms,
        on_removal: Callable[[str], None] = lambda reason: None,
        on_dead_letter: Callable[[str], None] = lambda kind: None,
        partitioning: str = "auto",
        on_mispartitioned: Callable[[str, int], None] = lambda topic, n: None,
        on_rerouted: Callable[[int], None] = lambda n: None,
        insights: bool = True,
    ):
        """``input_partitions``: the partition count of every input topic (the placement
        check computes where murmur2 puts each record's key); ``partitioning``: one of
        ``processors.placement.PARTITIONING``; ``on_mispartitioned(topic, n)``: n misplaced
        records found in a batch of ``topic``; ``on_rerouted(n)``: n of them forwarded;
        ``insights``: contract §11's work (off only to measure what it costs)."""
        if partitioning not in PARTITIONING:
            raise ValueError(f"partitioning must be one of {', '.join(PARTITIONING)}, not {partitioning!r}")
        self.names, self.codec, self.mapper, self.stores = names, codec, mapper, stores
        self.campaign_event_partitions = campaign_event_partitions
        self.input_partitions = dict(input_partitions)
        self.partitioning = partitioning
        self.placement = PlacementCheck()
        self.on_mispartitioned, self.on_rerouted = on_mispartitioned, on_rerouted
        self.rerouted = 0  # message inputs forwarded to the partition of their message so far
        self.region = region
        self.pending_timeout_ms, self.orphan_window_ms = pending_timeout_ms, orphan_window_ms
        self.attribution_window_ms = attribution_window_ms
        self.dead_letter_limit = max_record_bytes - DEAD_LETTER_OVERHEAD
        self.clock = clock
        self.insights = insights
        self.on_removal, self.on_dead_letter = on_removal, on_dead_letter
        self.throttle = StatsThrottle(stats_interval_s)
        self.message_stages: dict[int, MessageStage] = {}
        self.phone_stages: dict[int, PhoneStage] = {}
        self.campaign_stages: dict[int, CampaignStage] = {}
        self.dead_letters = 0  # input records dead-lettered so far
        n = names
        self.expected_record = {
            n.message_sent: "smstally.MessageSent",
            n.dlr: "smstally.DeliveryReceipt",
            n.unsubscribes: "smstally.Unsubscribe",
            n.campaigns: "smstally.CampaignLaunched",
        }
        self._parsers: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            n.message_sent: self._parse_message,
            n.dlr: self._parse_message,
            n.unsubscribes: self._parse_unsubscribe,
            n.campaigns: CampaignLaunched.from_record,
        }
        self.routes: dict[str, Route] = {
            n.message_sent: Route(self._fold_messages, "messages", True),
            n.dlr: Route(self._fold_messages, "messages", True),
            n.unsubscribes: Route(self._route_unsubscribes, None, True),
            n.campaigns: Route(self._route_launches, None, True),
            n.rerouted_messages: Route(self._fold_rerouted, "messages", False),
            n.phone_events: Route(self._fold_phones, "phones", False),
            n.campaign_events: Route(self._fold_campaigns, "campaigns", False),
        }

    # -- stages -------------------------------------------------------------------
    def _message_stage(self, p: int) -> MessageStage:
        return MessageStage(
            p, self.stores.messages, self.mapper, self.pending_timeout_ms, self.orphan_window_ms, self.insights
        )

    def _phone_stage(self, p: int) -> PhoneStage:
        return PhoneStage(p, self.stores.phones, self.attribution_window_ms, self.clock, self.insights)

    def _campaign_stage(self, p: int) -> CampaignStage:
        return CampaignStage(p, self.stores.campaigns, self.throttle)

    def campaign_partition(self, campaign_id: str) -> int:
        return partition_for(campaign_id.encode(), self.campaign_event_partitions)

    def campaigns(self) -> dict[str, CampaignState]:
        """Every campaign held, whatever its partition."""
        return {cid: st for stage in self.campaign_stages.values() for cid, st in stage.campaigns.items()}

    # -- recovery -----------------------------------------------------------------
    def rebuild_messages(self, partitions: Iterable[int]) -> int:
        """One message stage per partition, re-derived from its stored states; how many states."""
        n = 0
        for p in sorted(partitions):
            stage = self.message_stages[p] = self._message_stage(p)
            counted = _Counted(self.stores.message_states(p))
            stage.rebuild(counted, self.stores.message_watermark(p))
            n += counted.n
        return n

    def rebuild_phones(self, partitions: Iterable[int]) -> int:
        n = 0
        for p in sorted(partitions):
            stage = self.phone_stages[p] = self._phone_stage(p)
            counted = _Counted(self.stores.phone_states(p))
            stage.rebuild(counted)
            n += counted.n
        return n

    def rebuild_campaigns(self, partitions: Iterable[int]) -> int:
        """The campaign stages of ``partitions``; every campaign is to be published again."""
        wanted = set(partitions)
        held: dict[int, list[CampaignState]] = {p: [] for p in wanted}
        for st in self.stores.campaign_states():
            p = self.campaign_partition(st.campaign_id)
            if p in wanted:
                held[p].append(st)
        for p in sorted(wanted):
            stage = self.campaign_stages[p] = self._campaign_stage(p)
            stage.rebuild(held[p])
        return sum(len(v) for v in held.values())

    def revoke(self) -> None:
        """Forget every stage (eager rebalancing: what is kept is rebuilt after recovery)."""
        self.message_stages.clear()
        self.phone_stages.clear()
        self.campaign_stages.clear()
        self.throttle.clear()

    def on_batch_error(self, topic: str, partition: int) -> None:
        """A batch failed half way (its held writes discarded by the caller): re-derive the
        stage it touched from the stores, so that the batch can be handled again."""
        route = self.routes.get(topic)
        store = None if route is None else route.store
        if store == "messages":
            self.rebuild_messages({partition})
        elif store == "phones":
            self.rebuild_phones({partition})
        elif store == "campaigns":
            stage = self.campaign_stages.get(partition)
            if stage is not None:
                stage.reload()

    # -- input records -------------------------------------------------------------
    def parse(self, topic: str, record: Mapping[str, Any]) -> Any:
        """The event a decoded record of input ``topic`` is; InvalidEvent if it breaks the contract."""
        return self._parsers[topic](record)

    def _parse_message(self, rec: Mapping[str, Any]) -> MessageSent | DeliveryReceipt:
        if "outcome" in rec:
            return MessageSent.from_record(rec, self.region)
        return DeliveryReceipt.from_record(rec)

    def _parse_unsubscribe(self, rec: Mapping[str, Any]) -> Unsubscribe:
        return Unsubscribe.from_record(rec, self.region)

    def decode(self, topic: str, raw: bytes | None) -> dict[str, Any]:
        """The Avro record a raw value of input ``topic`` holds; DecodeError if it holds none."""
        _, value = self.codec.decode(raw, expected=self.expected_record[topic])  # type: ignore[arg-type]
        return value

    def _decode(self, rec: Record, parse: Callable[[Mapping[str, Any]], Any], add: Add) -> Any:
        """The event of an input record, or None when it became a dead letter."""
        try:
            return parse(self.decode(rec.topic, rec.value))
        except DecodeError as exc:
            self._dead_letter(rec, exc.kind, exc.reason, None, add)
        except InvalidEvent as exc:
            self._dead_letter(rec, exc.kind, exc.reason, exc.event_id, add)
        return None

    # -- routes (one call per fetched batch of one partition) ----------------------
    def _fold_messages(self, partition: int, records: Sequence[Record], add: Add) -> int:
        dead = self.dead_letters
        here = self._forward(partition, records, add)
        if here:
            self._fold_in_stage(partition, here, add)
        return self.dead_letters - dead

    def _fold_rerouted(self, partition: int, records: Sequence[Record], add: Add) -> int:
        """Forwarded message inputs: each is folded as the record it was (its dead letter, if
        it is one, names the original topic, partition and offset)."""
        decode = REROUTED.decode
        dead = self.dead_letters
        self._fold_in_stage(partition, [decode(rec.value or b"") for rec in records], add)
        return self.dead_letters - dead

    def _fold_in_stage(self, partition: int, records: Sequence[Record], add: Add) -> None:
        stage = self.message_stages.get(partition)
        if stage is None:  # assigned but not yet rebuilt: cannot happen after recovery
            stage = self.message_stages[partition] = self._message_stage(partition)
        decode, parse, emit, process = self._decode, self._parse_message, self.emit, stage.process
        for rec in records:
            ev = decode(rec, parse, add)
            if ev is not None:
                emit(process(ev), add)

    def _split(self, partition: int, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """One input batch as (on murmur2(key)'s partition, elsewhere or keyless), the second
        counted and explained (processors/placement)."""
        here: list[Record] = []
        misplaced: list[Record] = []
        if not records:
            return here, misplaced
        topic = records[0].topic
        n, place = self.input_partitions[topic], partition_for
        for rec in records:
            key = rec.key
            (here if key is not None and place(key, n) == partition else misplaced).append(rec)
        if misplaced:
            self.placement.found(topic, n, misplaced)
            self.on_mispartitioned(topic, len(misplaced))
        return here, misplaced

    def _forward(self, partition: int, records: Sequence[Record], add: Add) -> Sequence[Record]:
        """The placement check of a message batch; the records to fold here, the others
        forwarded to the partition of their message (see the module)."""
        here, misplaced = self._split(partition, records)
        mode = self.partitioning
        if mode == "trust" or not (misplaced or mode == "repartition"):
            return records
        away = records if mode == "repartition" else misplaced
        if mode == "repartition":
            here = []
        topic, n = self.names.rerouted_messages, self.input_partitions[records[0].topic]
        before = self.rerouted
        for rec in away:
            key = rec.key
            if key is None:  # keyless: its message id is in the value
                ev = self._decode(rec, self._parse_message, add)
                if ev is None:  # a dead letter now
                    continue
                key = ev.message_id.encode()
                if partition_for(key, n) == partition:
                    here.append(rec)
                    continue
            add(topic, key, REROUTED.encode(Rerouted(rec.topic, rec.partition, rec.offset, rec.key, rec.value)))
            self.rerouted += 1
        self.on_rerouted(self.rerouted - before)
        return here

    def check_placement(self, partition: int, records: Sequence[Record]) -> None:
        """Inputs re-keyed inside (unsubscribes, launches): misplaced ones are only counted."""
        self._split(partition, records)

    def _route_unsubscribes(self, partition: int, records: Sequence[Record], add: Add) -> int:
        self.check_placement(partition, records)
        topic, dead = self.names.phone_events, self.dead_letters
        for rec in records:
            u = self._decode(rec, self._parse_unsubscribe, add)
            if u is not None:
                add(topic, u.phone.encode(), unsubscribe_event(u))
        return self.dead_letters - dead

    def _route_launches(self, partition: int, records: Sequence[Record], add: Add) -> int:
        self.check_placement(partition, records)
        topic, dead = self.names.campaign_events, self.dead_letters
        for rec in records:
            c = self._decode(rec, CampaignLaunched.from_record, add)
            if c is not None:
                add(topic, c.campaign_id.encode(), launch_event(c, self.clock()))
        return self.dead_letters - dead

    def _fold_phones(self, partition: int, records: Sequence[Record], add: Add) -> int:
        stage = self.phone_stages.get(partition)
        if stage is None:
            stage = self.phone_stages[partition] = self._phone_stage(partition)
        for rec in records:
            ev = decode_phone_event(rec.value or b"")
            if isinstance(ev, SendIndexed):
                stage.index_send(ev.phone, ev.campaign_id, ev.message_id, ev.sent_at)
            elif isinstance(ev, HardBounce):
                self.emit(stage.process_bounce(ev), add)
            else:
                self.emit(stage.process_unsubscribe(ev), add)
        return 0

    def _fold_campaigns(self, partition: int, records: Sequence[Record], add: Add) -> int:
        stage = self.campaign_stages.get(partition)
        if stage is None:
            stage = self.campaign_stages[partition] = self._campaign_stage(partition)
        for rec in records:
            stage.process((rec.key or b"").decode(), decode_campaign_event(rec.value or b""), rec.offset)
        return 0

    # -- timers -------------------------------------------------------------------
    def flush_partials(self, now_ms: int) -> Iterator[PartialFlush]:
        """Each message and phone stage's partials in turn (a stage is flushed when reached:
        a caller that stops early leaves the others dirty for its next tick)."""
        stages: list[MessageStage | PhoneStage] = [*self.message_stages.values(), *self.phone_stages.values()]
        for stage in stages:
            yield PartialFlush(stage, stage.flush_partials(now_ms))

    def stats_waiting(self) -> bool:
        """Some campaign's figures changed since they were last published."""
        return bool(self.throttle.dirty)

    def take_due_stats(self, now_s: float) -> list[str]:
        """The campaigns to publish now (processors/stats_throttle: taken before any await)."""
        return self.throttle.take_due(now_s)

    def stats_record(self, campaign_id: str) -> tuple[bytes, bytes] | None:
        """The key and encoded CampaignStats of a held campaign (None: not held here)."""
        stage = self.campaign_stages.get(self.campaign_partition(campaign_id))
        rec = None if stage is None else stage.stats(campaign_id)
        if rec is None:
            return None
        return campaign_id.encode(), self.codec.encode("smstally.CampaignStats", rec)

    def stats_failed(self, campaign_id: str) -> None:
        """Publishing failed: due again at once."""
        self.throttle.failed(campaign_id)

    # -- outputs ------------------------------------------------------------------
    def emit(self, outs: list[Out], add: Add) -> None:
        """A stage's outputs, encoded, to their topics."""
        for o in outs:
            key, value, kind = o.key.encode(), o.value, o.kind
            if not isinstance(value, dict):  # a typed internal record
                topic = self.names.phone_events if kind == PHONE_EVENT else self.names.campaign_events
                add(topic, key, encode_internal(value))
            elif kind == MESSAGE_STATUS:
                add(self.names.message_status, key, self.codec.encode("smstally.MessageStatus", value))
            elif kind == REMOVAL:
                add(self.names.removals, key, self.codec.encode("smstally.AddressBookRemoval", value))
                log.debug("removal %s %s (%s)", value["reason"], mask(o.key), value["event_id"])
                self.on_removal(value["reason"])
            elif kind == SUPPRESSION:
                add(self.names.suppressions, key, self.codec.encode("smstally.Suppression", value))
            elif kind == DEAD_LETTER:
                self._report_orphan(o.key, value, add)

    def _report_orphan(self, okey: str, v: dict[str, Any], add: Add) -> None:
        log.warning("orphan receipts: %s", v["reason"])
        self.on_dead_letter(v["error_kind"])
        rec = {
            "topic": self.names.dlr,
            "partition": v["partition"],
            "offset": -1,
            "key": okey.encode(),
            "value": None,
            "reason": v["reason"],
            "error_kind": v["error_kind"],
            "event_id": None,
            "at": self.clock(),
        }
        add(self.names.dead_letter, okey.encode(), self.codec.encode("smstally.DeadLetter", rec))

    def _dead_letter(self, msg: Record, kind: str, reason: str, event_id: str | None, add: Add) -> None:
        log.warning("dead letter %s[%d]@%d: %s: %s", msg.topic, msg.partition, msg.offset, kind, reason)
        self.on_dead_letter(kind)
        self.dead_letters += 1
        key, value = msg.key, msg.value
        # A copy of a record near the size limit cannot fit in a dead letter (key twice, value,
        # reason): sending it would fail and crash the agent. Drop the copy, say where it is.
        limit = self.dead_letter_limit
        if 2 * len(key or b"") + len(value or b"") + len(reason.encode()) > limit:
            reason += (
                f" (raw value of {len(value or b'')} bytes not copied: too large for a dead letter; "
                f"read it at {msg.topic}[{msg.partition}]@{msg.offset})"
            )
            value = None
            if 2 * len(key or b"") + len(reason.encode()) > limit:
                key = None
        rec = {
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": key,
            "value": value,
            "reason": reason,
            "error_kind": kind,
            "event_id": event_id,
            "at": self.clock(),
        }
        add(
            self.names.dead_letter,
            msg.key if len(msg.key or b"") < limit // 2 else None,
            self.codec.encode("smstally.DeadLetter", rec),
        )


class _Counted:
    """An iterable of states that counts what it yielded (recovery logs how many)."""

    def __init__(self, states: Iterable[Any]):
        self.states, self.n = states, 0

    def __iter__(self) -> Iterator[Any]:
        for st in self.states:
            self.n += 1
            yield st
