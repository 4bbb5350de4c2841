"""A broker-free driver of the whole topology, in the spirit of Kafka Streams' TopologyTestDriver.

It runs the same stages the Faust app runs, with dict stores and in-memory logs for the
internal topics, so the rules can be tested (and benchmarked) without a broker. Routing of
internal records follows the real app: sends index phones, partials go to the campaign log.
"""
from __future__ import annotations

import zlib
from typing import Any, Callable

from . import campaign_stage
from .events import CampaignLaunched, DeliveryReceipt, InvalidEvent, MessageSent, Unsubscribe
from .message_stage import MessageStage
from .outputs import CAMPAIGN_EVENT, PHONE_EVENT, Out
from .phone_stage import PhoneStage
from .status_mapping import StatusMapper

PARSERS: dict[str, Callable[..., Any]] = {
    "sms.campaigns": CampaignLaunched.from_record,
    "sms.message-sent": MessageSent.from_record,
    "sms.dlr": DeliveryReceipt.from_record,
    "sms.unsubscribes": Unsubscribe.from_record,
}


def _part(key: str, n: int) -> int:
    return zlib.crc32(key.encode()) % n


def parse(topic: str, record: dict, region: str = "FR"):
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
        self.phone_log: list[list[tuple[str, Any]]] = [[] for _ in range(partitions)]
        self.campaign_log: list[list[tuple[str, dict]]] = [[] for _ in range(partitions)]
        self.campaign_pos = [0] * partitions
        self.campaigns: dict[str, campaign_stage.CampaignState] = {}
        self.outputs: list[Out] = []
        self.dead: list[tuple[str, InvalidEvent]] = []
        self._clock = clock or (lambda: len(self.outputs))

    def feed(self, topic: str, record: dict) -> None:
        try:
            ev = parse(topic, record, self.region)
        except InvalidEvent as exc:
            self.dead.append((topic, exc))
            return
        if isinstance(ev, (MessageSent, DeliveryReceipt)):
            self._route(self.messages[_part(ev.message_id, self.n)].process(ev))
        elif isinstance(ev, Unsubscribe):
            self.phone_log[_part(ev.phone, self.n)].append(("unsubscribe", ev))
        else:
            rec = {"type": "launch", "at": ev.launched_at, **{k: getattr(ev, k) for k in campaign_stage.SUMMARY_FIELDS}}
            self.campaign_log[_part(ev.campaign_id, self.n)].append((ev.campaign_id, rec))

    def _route(self, outs: list[Out]) -> None:
        for o in outs:
            if o.kind == PHONE_EVENT:
                self.phone_log[_part(o.key, self.n)].append(("send", o.value))
            elif o.kind == CAMPAIGN_EVENT:
                self.campaign_log[_part(o.key, self.n)].append((o.key, o.value))
            else:
                self.outputs.append(o)

    def drain(self) -> None:
        """Run the downstream stages over everything their logs hold."""
        for st in self.messages:
            self._route(st.flush_partials(self._clock()))
        for p, st in enumerate(self.phones):
            log, self.phone_log[p] = self.phone_log[p], []
            for kind, item in log:
                if kind == "send":
                    st.index_send(item["phone"], item["campaign_id"], item["message_id"], item["sent_at"])
                else:
                    self._route(st.process_unsubscribe(item))
            self._route(st.flush_partials(self._clock()))
        for p, log in enumerate(self.campaign_log):
            for off in range(self.campaign_pos[p], len(log)):
                cid, rec = log[off]
                self.campaigns[cid] = campaign_stage.fold(self.campaigns.get(cid), cid, rec, off)
            self.campaign_pos[p] = len(log)

    def stats(self) -> dict[str, dict]:
        return {cid: campaign_stage.stats(s) for cid, s in self.campaigns.items()}

    def outputs_of(self, kind: str) -> list[Out]:
        return [o for o in self.outputs if o.kind == kind]
