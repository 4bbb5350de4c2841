#!/usr/bin/env python3
"""Which binary format for the internal records (issue 9, point 3): the measurement.

    .venv/bin/python -m bench.record_formats [--repeat 7] [--n 20000]

Five realistic records (a send-index phone event, a message-stage partial with ten status
counts, a message state, a phone state, a campaign state holding eight partials), each
encoded and decoded by every candidate, best of ``--repeat`` runs of ``--n`` records:

- ``orjson arrays``: what the code did before (positional JSON arrays for the states, JSON
  objects with short keys for the events), on frozen dataclasses;
- ``fastavro``: frozen dataclasses converted to dicts, Avro schemaless (``fastavro``'s
  compiled ``schemaless_writer``/``schemaless_reader`` on parsed schemas), back to dataclasses;
- ``msgspec msgpack``: ``msgspec.Struct`` records (frozen, array-like), MessagePack, typed
  decode straight into the records;
- ``msgspec json``: the same Structs as JSON arrays, for reference.

Every candidate carries the one-byte format version in front (a copy of the payload on
decode included), so the figures compare what the codec would really cost. Self-contained:
the dataclass mirrors are today's shapes, written out here, so that the script still runs
after the project has moved to the format it chose.
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import fastavro
import msgspec
import orjson

# --- today's shapes (frozen dataclasses and named tuples) ---------------------------------


@dataclass(frozen=True, slots=True)
class DSend:
    event_id: str
    campaign_id: str
    message_id: str
    contact_id: str | None
    phone: str
    phone_valid: bool
    sent_at: int
    outcome: str
    not_sent_reason: str | None
    segments: int
    credits: float
    provider: str | None
    country: str | None
    operator: str | None


class Final(NamedTuple):
    carrier_time: int
    rank: int
    event_id: str
    status: str
    error_code: str | None
    provider: str | None


@dataclass(frozen=True, slots=True)
class DMessageState:
    message_id: str
    partition: int
    send: DSend | None
    send_ids: frozenset[str]
    receipt_ids: frozenset[str]
    best_final: Final | None
    last_pending_at: int | None
    max_event_time: int
    orphan_reported: bool


class ISend(NamedTuple):
    sent_at: int
    campaign_id: str
    message_id: str


class Handled(NamedTuple):
    campaign_id: str | None
    removal: bool
    at: int


@dataclass(frozen=True, slots=True)
class DPhoneState:
    phone: str
    partition: int
    sends: tuple[ISend, ...]
    handled: tuple[tuple[str, Handled], ...]
    latest: tuple[int, str, str] | None
    contact_id: str | None


@dataclass(frozen=True, slots=True)
class DCampaignState:
    campaign_id: str
    last_offset: int
    updated_at: int
    summary: dict[str, Any] | None
    parts: dict[str, tuple[list[int], dict[str, Any]]]


# --- the same as msgspec Structs -----------------------------------------------------------
class SSend(msgspec.Struct, frozen=True, array_like=True, gc=False):
    event_id: str
    campaign_id: str
    message_id: str
    contact_id: str | None
    phone: str
    phone_valid: bool
    sent_at: int
    outcome: str
    not_sent_reason: str | None
    segments: int
    credits: float
    provider: str | None
    country: str | None
    operator: str | None


class SMessageState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    message_id: str
    partition: int
    send: SSend | None
    send_ids: frozenset[str]
    receipt_ids: frozenset[str]
    best_final: Final | None
    last_pending_at: int | None
    max_event_time: int
    orphan_reported: bool


class SPhoneState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    phone: str
    partition: int
    sends: tuple[ISend, ...]
    handled: tuple[tuple[str, Handled], ...]
    latest: tuple[int, str, str] | None
    contact_id: str | None


class SSendIndexed(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=1):
    phone: str
    message_id: str
    campaign_id: str
    sent_at: int


class SUnsub(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=2):
    event_id: str
    phone: str


class MVersion(NamedTuple):
    sends: int
    receipts: int
    watermark: int


class SMessageCounts(msgspec.Struct, frozen=True, array_like=True, gc=False):
    sent: int
    not_sent: int
    not_sent_by_reason: dict[str, int]
    status_counts: dict[str, int]
    credits_micro: int
    first_sent_at: int | None
    last_event_at: int | None


class SMessagePartial(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=2):
    campaign_id: str
    partition: int
    version: MVersion
    counts: SMessageCounts
    at: int


class SUnsubPartial(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=3):
    campaign_id: str
    partition: int
    version: tuple[int]
    unsubscribed: int
    last_event_at: int | None
    at: int


class SLaunch(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=1):
    at: int
    name: str
    kind: str
    text: str
    sender_id: str
    sms_type: str
    created_at: int
    launched_at: int
    launch_list_size: int


CampaignEvent = SLaunch | SMessagePartial | SUnsubPartial


class Slot(NamedTuple):
    source: int
    partition: int


@dataclass(frozen=True, slots=True)
class SCampaignState:  # stays a dataclass; encoded through a tuple
    campaign_id: str
    last_offset: int
    updated_at: int
    summary: SLaunch | None
    parts: dict[Slot, SMessagePartial | SUnsubPartial]


# --- realistic values ----------------------------------------------------------------------
T = 1_733_000_000_000
U = "3f2c9a7e-1b4d-4e8f-9a6b-{:012d}"
STATUSES = [
    "DELIVERED",
    "PENDING",
    "UNKNOWN",
    "HARD_BOUNCE",
    "SOFT_BOUNCE",
    "EXPIRED",
    "REJECTED",
    "PROVIDER_ERROR",
    "NOT_SENT",
    "BLOCKED",
]
SC = {s: 1000 + 37 * i for i, s in enumerate(STATUSES)}
NSR = {"OPTED_OUT": 12, "INVALID_NUMBER": 3}
SEND = dict(
    event_id=U.format(1),
    campaign_id="camp-2024-11-black-friday",
    message_id=U.format(2),
    contact_id="ct-88213",
    phone="+33612345678",
    phone_valid=True,
    sent_at=T,
    outcome="SUBMITTED",
    not_sent_reason=None,
    segments=1,
    credits=0.065,
    provider="twilio",
    country="FR",
    operator="Orange",
)
FINAL = Final(T + 9_000, 5, U.format(4), "DELIVERED", None, "twilio")
SUMMARY = dict(
    name="Black Friday",
    kind="BATCH",
    text="-30% on everything, today only! STOP 36111",
    sender_id="SHOP",
    sms_type="marketing",
    created_at=T - 86_400_000,
    launched_at=T,
    launch_list_size=120_000,
)


def values() -> dict[str, Any]:
    counts = dict(sent=10_370, not_sent=15, nsr=NSR, sc=SC, cr=674_050_000, fs=T, le=T + 3_600_000)
    return {
        "send index": dict(
            phone="+33612345678", message_id=U.format(2), campaign_id="camp-2024-11-black-friday", sent_at=T
        ),
        "partial (10 statuses)": dict(p=3, v=[10_385, 20_711, T + 3_600_000], c=counts, at=T + 3_600_500),
        "message state": dict(
            mid=U.format(2),
            p=3,
            send=SEND,
            sids=[U.format(1)],
            rids=[U.format(3), U.format(4)],
            best=FINAL,
            lpa=T + 2_000,
            met=T + 9_000,
        ),
        "phone state": dict(
            phone="+33612345678",
            p=1,
            sends=[
                ISend(T - 86_400_000, "camp-2024-11-welcome", U.format(5)),
                ISend(T, "camp-2024-11-black-friday", U.format(2)),
            ],
            handled=[(U.format(6), Handled("camp-2024-11-black-friday", True, T + 60_000))],
            latest=(T + 60_000, U.format(6), "UNSUBSCRIBE"),
            contact="ct-88213",
        ),
        "campaign state (8 partials)": dict(counts=counts),
    }


# --- candidates ------------------------------------------------------------------------------
V = b"\x01"


def orjson_candidate() -> dict[str, tuple[Any, Callable[[Any], bytes], Callable[[bytes], Any]]]:
    v = values()
    dumps, loads = orjson.dumps, orjson.loads
    si = v["send index"]
    send_index = {"type": "send", **si}
    pa = v["partial (10 statuses)"]
    partial = {"type": "m", "campaign_id": "camp-2024-11-black-friday", **pa}
    ms = v["message state"]
    m = DMessageState(
        ms["mid"],
        ms["p"],
        DSend(**ms["send"]),
        frozenset(ms["sids"]),
        frozenset(ms["rids"]),
        ms["best"],
        ms["lpa"],
        ms["met"],
        False,
    )
    fields = DSend.__slots__

    def enc_m(s: DMessageState) -> bytes:
        send = None if s.send is None else [getattr(s.send, f) for f in fields]
        return V + dumps(
            [
                s.message_id,
                s.partition,
                send,
                sorted(s.send_ids),
                sorted(s.receipt_ids),
                None if s.best_final is None else list(s.best_final),
                s.last_pending_at,
                s.max_event_time,
                s.orphan_reported,
            ]
        )

    def dec_m(b: bytes) -> DMessageState:
        mid, p, send, sids, rids, best, lpa, met, orph = loads(b[1:])
        return DMessageState(
            mid,
            p,
            None if send is None else DSend(*send),
            frozenset(sids),
            frozenset(rids),
            None if best is None else Final(*best),
            lpa,
            met,
            orph,
        )

    ps = v["phone state"]
    ph = DPhoneState(ps["phone"], ps["p"], tuple(ps["sends"]), tuple(ps["handled"]), ps["latest"], ps["contact"])

    def enc_p(s: DPhoneState) -> bytes:
        return V + dumps(
            [
                s.phone,
                s.partition,
                [list(x) for x in s.sends],
                [[e, list(h)] for e, h in s.handled],
                None if s.latest is None else list(s.latest),
                s.contact_id,
            ]
        )

    def dec_p(b: bytes) -> DPhoneState:
        phone, p, sends, handled, latest, contact = loads(b[1:])
        return DPhoneState(
            phone,
            p,
            tuple(ISend(*x) for x in sends),
            tuple((e, Handled(*h)) for e, h in handled),
            None if latest is None else tuple(latest),
            contact,
        )

    c = v["campaign state (8 partials)"]["counts"]
    parts = {f"m{i}": ([10_385, 20_711, T], c) for i in range(4)}
    parts.update({f"u{i}": ([41], {"unsubscribed": 40, "le": T}) for i in range(4)})
    cs = DCampaignState("camp-2024-11-black-friday", 2_345, T, SUMMARY, parts)

    def enc_c(s: DCampaignState) -> bytes:
        return V + dumps(
            [s.campaign_id, s.last_offset, s.updated_at, s.summary, {k: [v_, c_] for k, (v_, c_) in s.parts.items()}]
        )

    def dec_c(b: bytes) -> DCampaignState:
        cid, off, upd, summary, parts_ = loads(b[1:])
        return DCampaignState(cid, off, upd, summary, {k: (v_, c_) for k, (v_, c_) in parts_.items()})

    def enc_d(d: Any) -> bytes:
        return V + dumps(d)

    def dec_d(b: bytes) -> Any:
        return loads(b[1:])

    return {
        "send index": (send_index, enc_d, dec_d),
        "partial (10 statuses)": (partial, enc_d, dec_d),
        "message state": (m, enc_m, dec_m),
        "phone state": (ph, enc_p, dec_p),
        "campaign state (8 partials)": (cs, enc_c, dec_c),
    }


def _avro(schema: dict[str, Any], named: dict[str, Any]) -> Any:
    return fastavro.parse_schema(schema, named_schemas=named)


def fastavro_candidate() -> dict[str, tuple[Any, Callable[[Any], bytes], Callable[[bytes], Any]]]:
    o = orjson_candidate()
    named: dict[str, Any] = {}
    opt = lambda t: ["null", t]  # noqa: E731
    counts_fields = [
        {"name": "sent", "type": "long"},
        {"name": "not_sent", "type": "long"},
        {"name": "not_sent_by_reason", "type": {"type": "map", "values": "long"}},
        {"name": "status_counts", "type": {"type": "map", "values": "long"}},
        {"name": "credits_micro", "type": "long"},
        {"name": "first_sent_at", "type": opt("long")},
        {"name": "last_event_at", "type": opt("long")},
    ]
    _avro({"type": "record", "name": "MessageCounts", "fields": counts_fields}, named)
    send_index = _avro(
        {
            "type": "record",
            "name": "SendIndexed",
            "fields": [
                {"name": "phone", "type": "string"},
                {"name": "message_id", "type": "string"},
                {"name": "campaign_id", "type": "string"},
                {"name": "sent_at", "type": "long"},
            ],
        },
        named,
    )
    partial = _avro(
        {
            "type": "record",
            "name": "MessagePartial",
            "fields": [
                {"name": "campaign_id", "type": "string"},
                {"name": "partition", "type": "int"},
                {"name": "version", "type": {"type": "array", "items": "long"}},
                {"name": "counts", "type": "MessageCounts"},
                {"name": "at", "type": "long"},
            ],
        },
        named,
    )
    send_fields = [
        {"name": f, "type": t}
        for f, t in [
            ("event_id", "string"),
            ("campaign_id", "string"),
            ("message_id", "string"),
            ("contact_id", opt("string")),
            ("phone", "string"),
            ("phone_valid", "boolean"),
            ("sent_at", "long"),
            ("outcome", "string"),
            ("not_sent_reason", opt("string")),
            ("segments", "int"),
            ("credits", "double"),
            ("provider", opt("string")),
            ("country", opt("string")),
            ("operator", opt("string")),
        ]
    ]
    _avro({"type": "record", "name": "Send", "fields": send_fields}, named)
    _avro(
        {
            "type": "record",
            "name": "Final",
            "fields": [
                {"name": "carrier_time", "type": "long"},
                {"name": "rank", "type": "int"},
                {"name": "event_id", "type": "string"},
                {"name": "status", "type": "string"},
                {"name": "error_code", "type": opt("string")},
                {"name": "provider", "type": opt("string")},
            ],
        },
        named,
    )
    mstate = _avro(
        {
            "type": "record",
            "name": "MessageState",
            "fields": [
                {"name": "message_id", "type": "string"},
                {"name": "partition", "type": "int"},
                {"name": "send", "type": opt("Send")},
                {"name": "send_ids", "type": {"type": "array", "items": "string"}},
                {"name": "receipt_ids", "type": {"type": "array", "items": "string"}},
                {"name": "best_final", "type": opt("Final")},
                {"name": "last_pending_at", "type": opt("long")},
                {"name": "max_event_time", "type": "long"},
                {"name": "orphan_reported", "type": "boolean"},
            ],
        },
        named,
    )
    pstate = _avro(
        {
            "type": "record",
            "name": "PhoneState",
            "fields": [
                {"name": "phone", "type": "string"},
                {"name": "partition", "type": "int"},
                {
                    "name": "sends",
                    "type": {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "ISend",
                            "fields": [
                                {"name": "sent_at", "type": "long"},
                                {"name": "campaign_id", "type": "string"},
                                {"name": "message_id", "type": "string"},
                            ],
                        },
                    },
                },
                {
                    "name": "handled",
                    "type": {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "Handled",
                            "fields": [
                                {"name": "event_id", "type": "string"},
                                {"name": "campaign_id", "type": opt("string")},
                                {"name": "removal", "type": "boolean"},
                                {"name": "at", "type": "long"},
                            ],
                        },
                    },
                },
                {"name": "latest_at", "type": opt("long")},
                {"name": "latest_event_id", "type": opt("string")},
                {"name": "latest_action", "type": opt("string")},
                {"name": "contact_id", "type": opt("string")},
            ],
        },
        named,
    )
    cstate = _avro(
        {
            "type": "record",
            "name": "CampaignState",
            "fields": [
                {"name": "campaign_id", "type": "string"},
                {"name": "last_offset", "type": "long"},
                {"name": "updated_at", "type": "long"},
                {
                    "name": "summary",
                    "type": opt(
                        {
                            "type": "record",
                            "name": "Summary",
                            "fields": [
                                {"name": "name", "type": "string"},
                                {"name": "kind", "type": "string"},
                                {"name": "text", "type": "string"},
                                {"name": "sender_id", "type": "string"},
                                {"name": "sms_type", "type": "string"},
                                {"name": "created_at", "type": "long"},
                                {"name": "launched_at", "type": "long"},
                                {"name": "launch_list_size", "type": "long"},
                            ],
                        }
                    ),
                },
                {
                    "name": "message_parts",
                    "type": {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "MPart",
                            "fields": [
                                {"name": "partition", "type": "int"},
                                {"name": "version", "type": {"type": "array", "items": "long"}},
                                {"name": "counts", "type": "MessageCounts"},
                            ],
                        },
                    },
                },
                {
                    "name": "unsubscribe_parts",
                    "type": {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "UPart",
                            "fields": [
                                {"name": "partition", "type": "int"},
                                {"name": "version", "type": {"type": "array", "items": "long"}},
                                {"name": "unsubscribed", "type": "long"},
                                {"name": "last_event_at", "type": opt("long")},
                            ],
                        },
                    },
                },
            ],
        },
        named,
    )
    w, r = fastavro.schemaless_writer, fastavro.schemaless_reader

    def enc_with(schema: Any, to: Callable[[Any], dict[str, Any]]) -> Callable[[Any], bytes]:
        def enc(x: Any) -> bytes:
            buf = io.BytesIO()
            buf.write(V)
            w(buf, schema, to(x))
            return buf.getvalue()

        return enc

    def dec_with(schema: Any, back: Callable[[Any], Any]) -> Callable[[bytes], Any]:
        def dec(b: bytes) -> Any:
            buf = io.BytesIO(b)
            buf.read(1)
            return back(r(buf, schema, None))

        return dec

    def counts(c: dict[str, Any]) -> dict[str, Any]:
        return {
            "sent": c["sent"],
            "not_sent": c["not_sent"],
            "not_sent_by_reason": c["nsr"],
            "status_counts": c["sc"],
            "credits_micro": c["cr"],
            "first_sent_at": c["fs"],
            "last_event_at": c["le"],
        }

    def m_to(s: DMessageState) -> dict[str, Any]:
        send = s.send
        return {
            "message_id": s.message_id,
            "partition": s.partition,
            "send": None if send is None else {f: getattr(send, f) for f in DSend.__slots__},
            "send_ids": sorted(s.send_ids),
            "receipt_ids": sorted(s.receipt_ids),
            "best_final": None if s.best_final is None else s.best_final._asdict(),
            "last_pending_at": s.last_pending_at,
            "max_event_time": s.max_event_time,
            "orphan_reported": s.orphan_reported,
        }

    def m_back(d: dict[str, Any]) -> DMessageState:
        send, best = d["send"], d["best_final"]
        return DMessageState(
            d["message_id"],
            d["partition"],
            None if send is None else DSend(**send),
            frozenset(d["send_ids"]),
            frozenset(d["receipt_ids"]),
            None if best is None else Final(**best),
            d["last_pending_at"],
            d["max_event_time"],
            d["orphan_reported"],
        )

    def p_to(s: DPhoneState) -> dict[str, Any]:
        lat = s.latest or (None, None, None)
        return {
            "phone": s.phone,
            "partition": s.partition,
            "sends": [x._asdict() for x in s.sends],
            "handled": [{"event_id": e, **h._asdict()} for e, h in s.handled],
            "latest_at": lat[0],
            "latest_event_id": lat[1],
            "latest_action": lat[2],
            "contact_id": s.contact_id,
        }

    def p_back(d: dict[str, Any]) -> DPhoneState:
        latest = None if d["latest_at"] is None else (d["latest_at"], d["latest_event_id"], d["latest_action"])
        return DPhoneState(
            d["phone"],
            d["partition"],
            tuple(ISend(**x) for x in d["sends"]),
            tuple((h.pop("event_id"), Handled(**h)) for h in d["handled"]),
            latest,
            d["contact_id"],
        )

    def c_to(s: DCampaignState) -> dict[str, Any]:
        return {
            "campaign_id": s.campaign_id,
            "last_offset": s.last_offset,
            "updated_at": s.updated_at,
            "summary": s.summary,
            "message_parts": [
                {"partition": int(k[1:]), "version": v_, "counts": counts(c_)}
                for k, (v_, c_) in s.parts.items()
                if k[0] == "m"
            ],
            "unsubscribe_parts": [
                {"partition": int(k[1:]), "version": v_, "unsubscribed": c_["unsubscribed"], "last_event_at": c_["le"]}
                for k, (v_, c_) in s.parts.items()
                if k[0] == "u"
            ],
        }

    def c_back(d: dict[str, Any]) -> DCampaignState:
        parts: dict[str, Any] = {}
        for x in d["message_parts"]:
            c_ = x["counts"]
            parts[f"m{x['partition']}"] = (
                x["version"],
                {
                    "sent": c_["sent"],
                    "not_sent": c_["not_sent"],
                    "nsr": c_["not_sent_by_reason"],
                    "sc": c_["status_counts"],
                    "cr": c_["credits_micro"],
                    "fs": c_["first_sent_at"],
                    "le": c_["last_event_at"],
                },
            )
        for x in d["unsubscribe_parts"]:
            parts[f"u{x['partition']}"] = (x["version"], {"unsubscribed": x["unsubscribed"], "le": x["last_event_at"]})
        return DCampaignState(d["campaign_id"], d["last_offset"], d["updated_at"], d["summary"], parts)

    si = {k: v_ for k, v_ in o["send index"][0].items() if k != "type"}
    pa = o["partial (10 statuses)"][0]
    pa_d = {
        "campaign_id": pa["campaign_id"],
        "partition": pa["p"],
        "version": pa["v"],
        "counts": counts(pa["c"]),
        "at": pa["at"],
    }
    same = lambda x: x  # noqa: E731
    return {
        "send index": (si, enc_with(send_index, same), dec_with(send_index, same)),
        "partial (10 statuses)": (pa_d, enc_with(partial, same), dec_with(partial, same)),
        "message state": (o["message state"][0], enc_with(mstate, m_to), dec_with(mstate, m_back)),
        "phone state": (o["phone state"][0], enc_with(pstate, p_to), dec_with(pstate, p_back)),
        "campaign state (8 partials)": (
            o["campaign state (8 partials)"][0],
            enc_with(cstate, c_to),
            dec_with(cstate, c_back),
        ),
    }


def msgspec_candidate(json: bool = False) -> dict[str, tuple[Any, Callable[[Any], bytes], Callable[[bytes], Any]]]:
    v = values()
    mod: Any = msgspec.json if json else msgspec.msgpack
    enc = mod.Encoder().encode

    def pair(t: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
        dec = mod.Decoder(t).decode

        def e(x: Any) -> bytes:
            return V + enc(x)

        def d(b: bytes) -> Any:
            if b[0] != 1:
                raise ValueError("unknown version")
            return dec(memoryview(b)[1:])

        return e, d

    si = SSendIndexed(**v["send index"])
    pa = v["partial (10 statuses)"]
    c = pa["c"]
    counts = SMessageCounts(c["sent"], c["not_sent"], c["nsr"], c["sc"], c["cr"], c["fs"], c["le"])
    partial = SMessagePartial("camp-2024-11-black-friday", pa["p"], MVersion(*pa["v"]), counts, pa["at"])
    ms = v["message state"]
    m = SMessageState(
        ms["mid"],
        ms["p"],
        SSend(**ms["send"]),
        frozenset(ms["sids"]),
        frozenset(ms["rids"]),
        ms["best"],
        ms["lpa"],
        ms["met"],
        False,
    )
    ps = v["phone state"]
    ph = SPhoneState(ps["phone"], ps["p"], tuple(ps["sends"]), tuple(ps["handled"]), ps["latest"], ps["contact"])
    parts: dict[Slot, Any] = {
        Slot(2, i): SMessagePartial("camp-2024-11-black-friday", i, MVersion(10_385, 20_711, T), counts, T)
        for i in range(4)
    }
    parts.update({Slot(3, i): SUnsubPartial("camp-2024-11-black-friday", i, (41,), 40, T, T) for i in range(4)})
    cs = SCampaignState("camp-2024-11-black-friday", 2_345, T, SLaunch(T, **SUMMARY), parts)
    cs_t = tuple[str, int, int, SLaunch | None, tuple[SMessagePartial | SUnsubPartial, ...]]
    ce, cd = pair(cs_t)

    def enc_c(s: SCampaignState) -> bytes:
        return ce((s.campaign_id, s.last_offset, s.updated_at, s.summary, tuple(s.parts.values())))

    def dec_c(b: bytes) -> SCampaignState:
        cid, off, upd, summary, parts_ = cd(b)
        return SCampaignState(
            cid, off, upd, summary, {Slot(2 if isinstance(p, SMessagePartial) else 3, p.partition): p for p in parts_}
        )

    return {
        "send index": (si, *pair(SSendIndexed | SUnsub)),
        "partial (10 statuses)": (partial, *pair(CampaignEvent)),
        "message state": (m, *pair(SMessageState)),
        "phone state": (ph, *pair(SPhoneState)),
        "campaign state (8 partials)": (cs, enc_c, dec_c),
    }


def best_of(repeat: int, n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n", type=int, default=20_000)
    a = ap.parse_args(argv)
    candidates = {
        "orjson arrays": orjson_candidate(),
        "fastavro": fastavro_candidate(),
        "msgspec msgpack": msgspec_candidate(),
        "msgspec json": msgspec_candidate(json=True),
    }
    print(f"{'record':<28} {'format':<16} {'encode us':>9} {'decode us':>9} {'bytes':>6}")
    for record in values():
        for name, cands in candidates.items():
            value, enc, dec = cands[record]
            raw = enc(value)
            back = dec(raw)
            assert back == value or name == "fastavro" and record == "send index", (name, record, back, value)
            reps = range(a.n)

            def encode(value: Any = value, enc: Any = enc, reps: range = reps) -> None:
                for _ in reps:
                    enc(value)

            def decode(raw: bytes = raw, dec: Any = dec, reps: range = reps) -> None:
                for _ in reps:
                    dec(raw)

            print(
                f"{record:<28} {name:<16} {best_of(a.repeat, a.n, encode):>9.2f} "
                f"{best_of(a.repeat, a.n, decode):>9.2f} {len(raw):>6}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
