"""A broker-free driver of the whole topology, in the spirit of Kafka Streams' TopologyTestDriver.

It runs the same stages the Faust app runs, with dict stores and in-memory logs for the
internal topics, so the rules can be tested (and benchmarked) without a broker. Routing of
internal records follows the real app: sends index phones, partials go to the campaign log.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from . import campaign_stage
from .events import CampaignLaunched, DeliveryReceipt, InvalidEvent, MessageSent, Unsubscribe
from .message_stage import MessageStage
from .outputs import CAMPAIGN_EVENT, PHONE_EVENT, Out
from .phone_stage import PhoneStage
from .records import (
    Launch,
    SendIndexed,
    decode_campaign_event,
    decode_phone_event,
    encode_campaign_event,
    encode_internal,
    encode_phone_event,
)
from .status_mapping import StatusMapper

PARSERS: dict[str, Callable[..., Any]] = {
    "sms.campaigns": CampaignLaunched.from_record,
    "sms.message-sent": MessageSent.from_record,
    "sms.dlr": DeliveryReceipt.from_record,
    "sms.unsubscribes": Unsubscribe.from_record,
}


def _part(key: str, n: int) -> int:
    return zlib.crc32(key.encode()) % n


def parse(topic: str, record: dict[str, Any], region: str = "FR") -> Any:
    fn = PARSERS[topic]
    return fn(record, region) if topic in ("sms.message-sent", "sms.unsubscribes") else fn(record)


class Topology:
    def __init__(self, partitions: int = 4, mapper: StatusMapper | None = None, region: str = "FR",
                 pending_timeout_ms: int | None = None, clock: Callable[[], int] | None = None):
        self.n = partitions
        self.region = region
        mapper = mapper or StatusMapper()
        kw = {} if pending_timeout_ms is None else {"pending_timeout_ms": pending_timeout_ms}
        self.messages = [MessageStage(p, {}, mapper, **kw) for p in range(partitions)]
        self.phones = [PhoneStage(p, {}) for p in range(partitions)]
        self.phone_log: list[list[bytes]] = [[] for _ in range(partitions)]  # encoded as on the topics
        self.campaign_log: list[list[tuple[str, bytes]]] = [[] for _ in range(partitions)]
        self.campaign_pos = [0] * partitions
        self.campaigns: dict[str, campaign_stage.CampaignState] = {}
        self.outputs: list[Out] = []
        self.dead: list[tuple[str, InvalidEvent]] = []
        self._clock = clock or (lambda: len(self.outputs))

    def feed(self, topic: str, record: dict[str, Any]) -> None:
        try:
            ev = parse(topic, record, self.region)
        except InvalidEvent as exc:
            self.dead.append((topic, exc))
            return
        if isinstance(ev, (MessageSent, DeliveryReceipt)):
            self._route(self.messages[_part(ev.message_id, self.n)].process(ev))
        elif isinstance(ev, Unsubscribe):
            self.phone_log[_part(ev.phone, self.n)].append(encode_phone_event(ev))
        else:
            rec = encode_campaign_event(Launch.of(ev, ev.launched_at))
            self.campaign_log[_part(ev.campaign_id, self.n)].append((ev.campaign_id, rec))

    def _route(self, outs: list[Out]) -> None:
        for o in outs:
            if o.kind == PHONE_EVENT:
                self.phone_log[_part(o.key, self.n)].append(encode_internal(o.value))
            elif o.kind == CAMPAIGN_EVENT:
                self.campaign_log[_part(o.key, self.n)].append((o.key, encode_internal(o.value)))
            else:
                self.outputs.append(o)

    def drain(self) -> None:
        """Run the downstream stages over everything their logs hold."""
        for ms in self.messages:
            self._route(ms.flush_partials(self._clock()))
        for p, ps in enumerate(self.phones):
            phone_log, self.phone_log[p] = self.phone_log[p], []
            for raw in phone_log:
                item = decode_phone_event(raw)
                if isinstance(item, SendIndexed):
                    ps.index_send(item.phone, item.campaign_id, item.message_id, item.sent_at)
                else:
                    self._route(ps.process_unsubscribe(item))
            self._route(ps.flush_partials(self._clock()))
        for p, log in enumerate(self.campaign_log):
            for off in range(self.campaign_pos[p], len(log)):
                cid, raw = log[off]
                self.campaigns[cid] = campaign_stage.fold(self.campaigns.get(cid), cid, decode_campaign_event(raw), off)
            self.campaign_pos[p] = len(log)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {cid: campaign_stage.stats(s) for cid, s in self.campaigns.items()}

    def outputs_of(self, kind: str) -> list[Out]:
        return [o for o in self.outputs if o.kind == kind]
