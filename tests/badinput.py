"""Bad records for the four input topics (contract §8), each with the outcome it must have.

Every generator is a pure function of its seed: the same seed gives the same bytes, so a
failure found by the integration test or the soak can be replayed exactly. An ``Item`` is
one Kafka record (topic, key, value) and what smstally must do with it:

* ``DEAD_LETTER`` with ``kind``, the ``DeadLetter.error_kind`` expected, or
* ``ACCEPTED``: records that look odd but are not bad. An unparseable phone is kept as
  given and flagged, and still counted (contract §3); a Confluent frame whose schema id is
  unknown is read as the topic's own record (§2: readers accept both framings).

The expected kinds come from the contract and the README's decisions, not from running
the code under test: timestamps outside 2000-01-01..2100-01-01 are absurd, ids are at most
256 characters, phones at most 64, free text at most ``MAX_TEXT``, and the enums' reader
defaults (``UNKNOWN``) are dead-lettered.

Accepted items all belong to one campaign of their own, ``FUZZ_CAMPAIGN``, and are chosen
so that their effect on it is known in advance (``expected_fuzz_stats``): sends are
``NOT_SENT`` (final at once, so receipts, timeouts and watermarks cannot move them), and
their event times sit inside the simulated day (``BASE_MS``) so that they move no
partition's event-time watermark past the scenario's own. Every other campaign's counts
must therefore come out exactly as if no bad record had been published.

``classify(topic, raw)`` is the worker's decode-then-validate step as one pure function.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastavro import schemaless_writer

from schemas.codec import AvroCodec, DecodeError, compile_schema, fingerprint, load_schemas

ACCEPTED = "accepted"
DEAD_LETTER = "dead_letter"

CAMPAIGNS = "sms.campaigns"
MESSAGE_SENT = "sms.message-sent"
DLR = "sms.dlr"
UNSUBSCRIBES = "sms.unsubscribes"
INPUT_TOPICS = (CAMPAIGNS, MESSAGE_SENT, DLR, UNSUBSCRIBES)
RECORD_OF = {
    CAMPAIGNS: "smstally.CampaignLaunched",
    MESSAGE_SENT: "smstally.MessageSent",
    DLR: "smstally.DeliveryReceipt",
    UNSUBSCRIBES: "smstally.Unsubscribe",
}

# The contract's limits, restated here (README "Decisions"), not imported from processors/.
MIN_TS = 946_684_800_000  # 2000-01-01T00:00Z, inclusive
MAX_TS = 4_102_444_800_000  # 2100-01-01T00:00Z, exclusive
MAX_ID = 256
MAX_PHONE = 64
MAX_TEXT = 10_000
ONE_MB = 1_000_000

BASE_MS = 1_795_420_800_000  # 2026-11-23T08:00Z: the simulator's default day
FUZZ_CAMPAIGN = "fuzz-campaign"
FUZZ_LAUNCH = {"name": "Fuzz: bad input", "kind": "OTHER", "launch_list_size": 0}

# Phones that are not bad input: kept as given (stripped), flagged, counted.
UNPARSEABLE_PHONES = (
    "not-a-phone",
    "12",
    "+",
    "(555)",
    "abc 123",
    "0",
    "+0 000",
    "☎ call me",
    "N/A",
    "++33 6",
    "06 12",
    "+999999999999999999999",
    "x" * MAX_PHONE,
)

SINGLE_OBJECT = b"\xc3\x01"
CONFLUENT = b"\x00"


@dataclass(frozen=True)
class Item:
    """One record to publish on ``topic`` and what must become of it."""

    topic: str
    key: bytes | None
    value: bytes | None
    outcome: str  # ACCEPTED or DEAD_LETTER
    kind: str | None  # the expected DeadLetter.error_kind
    label: str  # what the generator meant, for failure messages
    effect: dict = field(default_factory=dict, compare=False)  # accepted: contribution to FUZZ_CAMPAIGN

    def __repr__(self) -> str:
        size = None if self.value is None else len(self.value)
        return f"Item({self.topic}, {self.label}, {self.outcome}/{self.kind}, {size} bytes)"


# -- classify: the worker's decode + validate, as one function --------------------------

_CODEC = AvroCodec()


@dataclass(frozen=True)
class Outcome:
    outcome: str
    kind: str | None = None
    reason: str | None = None
    event: Any = None
    record: dict | None = None  # the decoded record, when decoding succeeded


def classify(topic: str, raw: bytes | None, region: str = "FR") -> Outcome:
    """Decode ``raw`` as the record of ``topic`` and validate it with the production
    topology's own decode and parse (processors/topology.py), counting the outcomes.

    Returns the outcome; only DecodeError and InvalidEvent are turned into dead letters,
    anything else propagates (that is the bug the fuzzing looks for).
    """
    from processors.events import InvalidEvent
    from tests.driving import decode, parse

    TALLY["tried"] += 1
    try:
        rec = decode(topic, raw)
    except DecodeError as exc:
        TALLY[f"dead:{exc.kind}"] += 1
        return Outcome(DEAD_LETTER, exc.kind, exc.reason)
    try:
        ev = parse(topic, rec, region)
    except InvalidEvent as exc:
        TALLY[f"dead:{exc.kind}"] += 1
        return Outcome(DEAD_LETTER, exc.kind, exc.reason, record=rec)
    TALLY["accepted"] += 1
    return Outcome(ACCEPTED, event=ev, record=rec)


def contract_problems(topic: str, rec: dict) -> set[str]:
    """The error kinds a decoded record deserves, by the contract's rules restated
    independently of processors/events.py: empty means it must be accepted; otherwise the
    worker must dead-letter it with one of these kinds (which one depends on the order in
    which it checks)."""
    out: set[str] = set()

    def ident(f: str, optional: bool = False) -> None:
        v = rec.get(f)
        if optional and (v is None or (isinstance(v, str) and not v.strip())):
            return
        if not isinstance(v, str) or not v.strip():
            out.add("missing_id")
        elif len(v) > MAX_ID:
            out.add("invalid_field")

    def text(f: str, limit: int = MAX_ID) -> None:
        v = rec.get(f)
        if v is not None and (not isinstance(v, str) or len(v) > limit):
            out.add("invalid_field")

    def ts(f: str, optional: bool = False) -> None:
        v = rec.get(f)
        if v is None and optional:
            return
        if not isinstance(v, int) or isinstance(v, bool):
            out.add("invalid_timestamp")
        elif not MIN_TS <= v < MAX_TS:
            out.add("absurd_timestamp")

    def phone() -> None:
        v = rec.get("phone")
        if not isinstance(v, str) or not v.strip():
            out.add("missing_id")
        elif len(v) > MAX_PHONE:
            out.add("invalid_field")

    def enum(f: str, allowed: set[str]) -> None:
        if rec.get(f) not in allowed:
            out.add("unknown_enum")

    ident("event_id")
    if topic == CAMPAIGNS:
        ident("campaign_id")
        text("name", MAX_TEXT), text("text", MAX_TEXT), text("sender_id"), text("sms_type")
        enum("kind", {"BATCH", "AUTOMATED", "OTHER"})
        ts("created_at"), ts("launched_at")
        size = rec.get("launch_list_size")
        if not isinstance(size, int) or size < 0:
            out.add("invalid_field")
    elif topic == MESSAGE_SENT:
        ident("campaign_id"), ident("message_id"), ident("contact_id", optional=True), phone()
        ts("sent_at")
        enum("outcome", {"SUBMITTED", "PROVIDER_ERROR", "NOT_SENT"})
        seg, cr = rec.get("segments", 1), rec.get("credits", 0.0)
        if not isinstance(seg, int) or seg < 0:
            out.add("invalid_field")
        if not isinstance(cr, (int, float)) or not math.isfinite(cr) or not 0 <= cr < 1e9:
            out.add("invalid_field")
        text("provider"), text("country"), text("operator")
    elif topic == DLR:
        ident("message_id"), ident("campaign_id", optional=True)
        text("provider"), text("error_code")
        status = rec.get("status")
        if not isinstance(status, str) or not status.strip():
            out.add("missing_field")
        elif len(status) > MAX_ID:
            out.add("invalid_field")
        ts("done_at", optional=True), ts("received_at")
    elif topic == UNSUBSCRIBES:
        phone()
        ident("contact_id", optional=True), ident("campaign_id", optional=True)
        enum("action", {"UNSUBSCRIBE", "RESUBSCRIBE"})
        enum("channel", {"LINK", "STOP_KEYWORD", "MANUAL", "COMPLAINT", "OTHER"})
        text("text", MAX_TEXT)
        ts("at")
    return out


TALLY: Counter = Counter()  # what classify() saw in this process (the soak's summary)


# -- valid records ----------------------------------------------------------------------


def encode(record_name: str, value: dict) -> bytes:
    return _CODEC.encode(record_name, value)


def body(record_name: str, value: dict) -> bytes:
    """The Avro binary body alone (no framing)."""
    return encode(record_name, value)[10:]


def confluent(schema_id: int, body_bytes: bytes) -> bytes:
    return CONFLUENT + schema_id.to_bytes(4, "big") + body_bytes


def _ident(rng: random.Random, prefix: str) -> str:
    return f"{prefix}-{rng.getrandbits(48):012x}"


def _mobile(rng: random.Random) -> str:
    return f"+336{rng.randrange(10**8):08d}"


def valid_record(topic: str, rng: random.Random) -> dict:
    """A record of ``topic`` that breaks no rule (ids unique per call)."""
    t = BASE_MS + rng.randrange(3_600_000)
    if topic == CAMPAIGNS:
        return {
            "event_id": _ident(rng, "ev"),
            "campaign_id": _ident(rng, "c"),
            "name": "Soldes d'hiver -30 %",
            "kind": rng.choice(["BATCH", "AUTOMATED"]),
            "text": "Bonjour ! -30 % avec le code HIVER 😀 STOP 36111",
            "sender_id": "BOUTIQUE",
            "sms_type": "marketing",
            "created_at": t - 60_000,
            "launched_at": t,
            "launch_list_size": rng.randrange(1, 10_000),
        }
    if topic == MESSAGE_SENT:
        return {
            "event_id": _ident(rng, "ev"),
            "campaign_id": _ident(rng, "c"),
            "message_id": _ident(rng, "m"),
            "contact_id": rng.choice([None, _ident(rng, "ct")]),
            "phone": _mobile(rng),
            "sent_at": t,
            "outcome": "SUBMITTED",
            "not_sent_reason": None,
            "segments": rng.randrange(1, 4),
            "credits": rng.choice([0.0, 1.0, 1.5]),
            "provider": rng.choice([None, "smsmode", "twilio"]),
            "country": rng.choice([None, "FR"]),
            "operator": rng.choice([None, "Orange", "SFR é"]),
        }
    if topic == DLR:
        return {
            "event_id": _ident(rng, "ev"),
            "message_id": _ident(rng, "m"),
            "campaign_id": rng.choice([None, _ident(rng, "c")]),
            "provider": rng.choice([None, "smpp", "vonage"]),
            "status": rng.choice(["DELIVRD", "UNDELIV", "delivered", "EXPIRED"]),
            "error_code": rng.choice([None, "000", "001", "30005"]),
            "done_at": rng.choice([None, t - 1000]),
            "received_at": t,
        }
    if topic == UNSUBSCRIBES:
        return {
            "event_id": _ident(rng, "ev"),
            "phone": _mobile(rng),
            "contact_id": rng.choice([None, _ident(rng, "ct")]),
            "campaign_id": rng.choice([None, _ident(rng, "c")]),
            "action": rng.choice(["UNSUBSCRIBE", "RESUBSCRIBE"]),
            "channel": rng.choice(["LINK", "STOP_KEYWORD", "MANUAL", "COMPLAINT", "OTHER"]),
            "text": rng.choice([None, "STOP", "stop svp é"]),
            "at": t,
        }
    raise KeyError(topic)


def record_key(topic: str, rec: dict) -> bytes:
    """The contract's key (§1): campaign_id, message_id or phone, UTF-8."""
    field_ = {CAMPAIGNS: "campaign_id", MESSAGE_SENT: "message_id", DLR: "message_id", UNSUBSCRIBES: "phone"}[topic]
    return str(rec[field_]).encode()


def _odd_key(rng: random.Random, rec: dict | None, topic: str) -> bytes | None:
    """Keys of bad records are whatever the producer sent: the contract's, none, empty, binary."""
    r = rng.random()
    if rec is not None and r < 0.6:
        try:
            return record_key(topic, rec)
        except (KeyError, TypeError):
            pass
    if r < 0.75:
        return None
    if r < 0.85:
        return b""
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 24)))


# -- field boundaries, for cuts at every kind of position -------------------------------

_FIELD_ENDS: dict[str, Any] = {}


def field_ends(record_name: str, value: dict) -> list[tuple[str, int]]:
    """(field name, offset in the body where it ends) for each field, in order."""
    schema = load_schemas()[record_name]
    ends, out = [], io.BytesIO()
    for i, f in enumerate(schema["fields"]):
        key = (record_name, i)
        parsed = _FIELD_ENDS.get(key)
        if parsed is None:
            prefix = dict(schema, fields=schema["fields"][: i + 1], name=f"Prefix{i}")
            parsed = _FIELD_ENDS[key] = compile_schema(prefix)
        out.seek(0)
        out.truncate()
        schemaless_writer(out, parsed, {g["name"]: value[g["name"]] for g in schema["fields"][: i + 1]})
        ends.append((f["name"], len(out.getvalue())))
    return ends


def cut_positions(record_name: str, value: dict, header: int) -> list[tuple[str, int]]:
    """Where to cut a framed value: in the header, at its end, at every field boundary,
    inside every field longer than a byte, one byte short."""
    full = header + len(body(record_name, value))
    cuts = [("header-1", 1), ("header-mid", header // 2 + 1), ("header-end", header)]
    prev = 0
    for name, end in field_ends(record_name, value):
        if end - prev > 1:
            cuts.append((f"inside-{name}", header + (prev + end) // 2))
        if end < len(body(record_name, value)):
            cuts.append((f"after-{name}", header + end))
        prev = end
    cuts.append(("last-byte", full - 1))
    seen, out = set(), []
    for label, pos in cuts:
        if 0 < pos < full and pos not in seen:
            seen.add(pos)
            out.append((label, pos))
    return out


# -- the generators ---------------------------------------------------------------------


def random_bytes(topic: str, seed: int, n: int = 8) -> list[Item]:
    """Noise, JSON, text: nothing that starts like either Avro framing."""
    rng = random.Random(f"random:{topic}:{seed}")
    items = []
    for i in range(n):
        size = rng.choice([1, 2, 3, 9, 10, 64, 500, 4096])
        data = bytearray(rng.getrandbits(8) for _ in range(size))
        while data[0] in (0x00, 0xC3):
            data[0] = rng.getrandbits(8)
        items.append(Item(topic, _odd_key(rng, None, topic), bytes(data), DEAD_LETTER, "undecodable", f"random-{size}"))
    rec = valid_record(topic, rng)
    items.append(Item(topic, record_key(topic, rec), json.dumps(rec).encode(), DEAD_LETTER, "undecodable", "json"))
    items.append(Item(topic, None, b"hello, world", DEAD_LETTER, "undecodable", "text"))
    return items


def empty_values(topic: str, seed: int) -> list[Item]:
    rng = random.Random(f"empty:{topic}:{seed}")
    return [
        Item(topic, _odd_key(rng, None, topic), b"", DEAD_LETTER, "empty", "empty"),
        Item(topic, f"tombstone-{seed}".encode(), None, DEAD_LETTER, "empty", "tombstone"),
    ]


def truncated(topic: str, seed: int) -> list[Item]:
    """A valid value cut short at every kind of position, in both framings."""
    rng = random.Random(f"truncated:{topic}:{seed}")
    name = RECORD_OF[topic]
    items = []
    for framing in ("single-object", "confluent"):
        rec = valid_record(topic, rng)
        value = encode(name, rec) if framing == "single-object" else confluent(rng.randrange(1, 1000), body(name, rec))
        header = 10 if framing == "single-object" else 5
        for label, pos in cut_positions(name, rec, header):
            items.append(
                Item(
                    topic,
                    _odd_key(rng, rec, topic),
                    value[:pos],
                    DEAD_LETTER,
                    "truncated",
                    f"truncated-{framing}-{label}",
                )
            )
    return items


def unknown_fingerprints(topic: str, seed: int) -> list[Item]:
    """A valid body behind a single-object header whose fingerprint is none of ours."""
    rng = random.Random(f"fingerprint:{topic}:{seed}")
    name = RECORD_OF[topic]
    known = {fingerprint(n) for n in load_schemas()}
    items = []
    rec = valid_record(topic, rng)
    fp = fingerprint(name)
    candidates = [
        ("big-endian", fp[::-1]),
        ("zero", bytes(8)),
        ("random", rng.randbytes(8)),
        ("one-bit-off", bytes([fp[0] ^ 1]) + fp[1:]),
    ]
    for label, fake in candidates:
        if fake in known:
            continue
        items.append(
            Item(
                topic,
                record_key(topic, rec),
                SINGLE_OBJECT + fake + body(name, rec),
                DEAD_LETTER,
                "unknown_fingerprint",
                f"fingerprint-{label}",
            )
        )
    return items


def confluent_frames(topic: str, seed: int) -> list[Item]:
    """Confluent frames with an id no registry here knows: read as the topic's own record,
    so they are exactly as bad as their body (and accepted when the body is good)."""
    rng = random.Random(f"confluent:{topic}:{seed}")
    name = RECORD_OF[topic]
    rec = valid_record(topic, rng)
    sid = rng.randrange(1, 2**31)
    items = [
        Item(
            topic,
            record_key(topic, rec),
            confluent(sid, body(name, rec) + b"\x00"),
            DEAD_LETTER,
            "undecodable",
            "confluent-trailing-byte",
        ),
        Item(topic, None, confluent(sid, b""), DEAD_LETTER, "truncated", "confluent-no-body"),
        Item(topic, None, b"\x00\x00\x01", DEAD_LETTER, "truncated", "confluent-short-header"),
    ]
    bad = valid_record(topic, rng)
    bad["event_id"] = ""
    items.append(
        Item(
            topic,
            record_key(topic, bad),
            confluent(sid, body(name, bad)),
            DEAD_LETTER,
            "missing_id",
            "confluent-empty-event-id",
        )
    )
    return items


def wrong_record_types(topic: str, seed: int) -> list[Item]:
    """A valid record of another type: the other inputs (a DeliveryReceipt on
    sms.message-sent) and the outputs (a CampaignStats echoed back)."""
    rng = random.Random(f"wrong:{topic}:{seed}")
    items = []
    for other in INPUT_TOPICS:
        if other == topic:
            continue
        rec = valid_record(other, rng)
        items.append(
            Item(
                topic,
                record_key(other, rec),
                encode(RECORD_OF[other], rec),
                DEAD_LETTER,
                "wrong_record_type",
                f"wrong-type-{RECORD_OF[other].rpartition('.')[2]}",
            )
        )
    outputs = {
        "smstally.CampaignStats": {
            "campaign_id": "c-x",
            "version": 1,
            "updated_at": BASE_MS,
            "sent": 1,
            "not_sent": 0,
            "not_sent_by_reason": {},
            "status_counts": {"DELIVERED": 1},
            "unsubscribed": 0,
            "credits": 1.0,
            "rates": {"delivery": 1.0},
            "first_sent_at": BASE_MS,
            "last_event_at": BASE_MS,
        },
        "smstally.DeadLetter": {
            "topic": topic,
            "partition": 0,
            "offset": 1,
            "key": None,
            "value": b"\x01",
            "reason": "r",
            "error_kind": "undecodable",
            "event_id": None,
            "at": BASE_MS,
        },
        "smstally.MessageStatus": {
            "message_id": "m-x",
            "campaign_id": "c-x",
            "contact_id": None,
            "phone": "+33612345678",
            "status": "DELIVERED",
            "category": "receipt",
            "error_code": None,
            "provider": None,
            "sent_at": BASE_MS,
            "status_at": BASE_MS,
            "version": 1,
        },
        "smstally.AddressBookRemoval": {
            "event_id": "ev",
            "phone": "+33612345678",
            "contact_id": None,
            "campaign_id": None,
            "message_id": None,
            "reason": "BLACKLISTED",
            "status": None,
            "error_code": None,
            "at": BASE_MS,
        },
    }
    for rname, value in outputs.items():
        items.append(
            Item(
                topic,
                None,
                encode(rname, value),
                DEAD_LETTER,
                "wrong_record_type",
                f"wrong-type-{rname.rpartition('.')[2]}",
            )
        )
    return items


_TS_FIELDS = {
    CAMPAIGNS: ("created_at", "launched_at"),
    MESSAGE_SENT: ("sent_at",),
    DLR: ("done_at", "received_at"),
    UNSUBSCRIBES: ("at",),
}
ABSURD_TIMESTAMPS = {
    "zero": 0,
    "seconds": BASE_MS // 1000,
    "microseconds": BASE_MS * 1000,
    "year-3000": 32_503_680_000_000,
    "negative": -BASE_MS,
    "just-before-2000": MIN_TS - 1,
    "2100": MAX_TS,
    "max-long": 2**63 - 1,
}


def _violations(topic: str) -> list[tuple[str, dict, str]]:
    """(label, fields to change, expected kind): one broken rule per record."""
    long_id = "i" * (MAX_ID + 1)
    v: list[tuple[str, dict, str]] = [
        ("empty-event_id", {"event_id": ""}, "missing_id"),
        ("blank-event_id", {"event_id": "   "}, "missing_id"),
        ("long-event_id", {"event_id": long_id}, "invalid_field"),
        ("huge-event_id", {"event_id": "e" * 100_000}, "invalid_field"),
    ]
    for f in _TS_FIELDS[topic]:
        v += [(f"{f}-{label}", {f: ts}, "absurd_timestamp") for label, ts in ABSURD_TIMESTAMPS.items()]
    if topic == CAMPAIGNS:
        v += [
            ("empty-campaign_id", {"campaign_id": ""}, "missing_id"),
            ("long-campaign_id", {"campaign_id": "c" * 1000}, "invalid_field"),
            ("negative-list-size", {"launch_list_size": -1}, "invalid_field"),
            ("1MB-text", {"text": "t" * ONE_MB}, "invalid_field"),
            ("long-text", {"text": "é" * (MAX_TEXT + 1)}, "invalid_field"),
            ("long-name", {"name": "n" * (MAX_TEXT + 1)}, "invalid_field"),
            ("long-sender_id", {"sender_id": "s" * (MAX_ID + 1)}, "invalid_field"),
            ("long-sms_type", {"sms_type": "m" * (MAX_ID + 1)}, "invalid_field"),
        ]
    elif topic == MESSAGE_SENT:
        v += [
            ("empty-campaign_id", {"campaign_id": ""}, "missing_id"),
            ("empty-message_id", {"message_id": ""}, "missing_id"),
            ("blank-message_id", {"message_id": " \t"}, "missing_id"),
            ("empty-phone", {"phone": ""}, "missing_id"),
            ("blank-phone", {"phone": "   "}, "missing_id"),
            ("long-phone", {"phone": "6" * (MAX_PHONE + 1)}, "invalid_field"),
            ("long-message_id", {"message_id": "m" * (MAX_ID + 1)}, "invalid_field"),
            ("long-contact_id", {"contact_id": "k" * (MAX_ID + 1)}, "invalid_field"),
            ("outcome-UNKNOWN", {"outcome": "UNKNOWN"}, "unknown_enum"),
            ("negative-segments", {"segments": -1}, "invalid_field"),
            ("negative-credits", {"credits": -1.0}, "invalid_field"),
            ("nan-credits", {"credits": float("nan")}, "invalid_field"),
            ("inf-credits", {"credits": float("inf")}, "invalid_field"),
            ("absurd-credits", {"credits": 1e12}, "invalid_field"),
            ("long-provider", {"provider": "p" * (MAX_ID + 1)}, "invalid_field"),
            ("long-operator", {"operator": "o" * 100_000}, "invalid_field"),
        ]
    elif topic == DLR:
        v += [
            ("empty-message_id", {"message_id": ""}, "missing_id"),
            ("long-message_id", {"message_id": "m" * (MAX_ID + 1)}, "invalid_field"),
            ("long-campaign_id", {"campaign_id": "c" * (MAX_ID + 1)}, "invalid_field"),
            ("empty-status", {"status": ""}, "missing_field"),
            ("long-status", {"status": "S" * (MAX_ID + 1)}, "invalid_field"),
            ("long-error_code", {"error_code": "9" * (MAX_ID + 1)}, "invalid_field"),
            ("long-provider", {"provider": "p" * (MAX_ID + 1)}, "invalid_field"),
        ]
    elif topic == UNSUBSCRIBES:
        v += [
            ("empty-phone", {"phone": ""}, "missing_id"),
            ("long-phone", {"phone": "+33" + "6" * MAX_PHONE}, "invalid_field"),
            ("long-campaign_id", {"campaign_id": "c" * (MAX_ID + 1)}, "invalid_field"),
            ("action-UNKNOWN", {"action": "UNKNOWN"}, "unknown_enum"),
            ("1MB-text", {"text": "S" * ONE_MB}, "invalid_field"),
        ]
    return v


def contract_violations(
    topic: str, seed: int, huge: bool = True, framings: Iterable[str] = ("single-object",)
) -> list[Item]:
    """Records that decode but break one rule of the contract each."""
    rng = random.Random(f"violations:{topic}:{seed}")
    name = RECORD_OF[topic]
    items = []
    for framing in framings:
        for label, changes, kind in _violations(topic):
            if not huge and any(isinstance(x, str) and len(x) > 50_000 for x in changes.values()):
                continue
            rec = dict(valid_record(topic, rng), **changes)
            data = (
                encode(name, rec) if framing == "single-object" else confluent(rng.randrange(1, 1000), body(name, rec))
            )
            key = _odd_key(rng, rec, topic)
            if key is not None and len(key) > 1024:
                key = key[:1024]
            items.append(
                Item(
                    topic,
                    key,
                    data,
                    DEAD_LETTER,
                    kind,
                    f"{label}" + ("" if framing == "single-object" else "-confluent"),
                )
            )
    return items


def accepted(seed: int) -> list[Item]:
    """Odd but good records of FUZZ_CAMPAIGN, with their (known) effect on its stats."""
    rng = random.Random(f"accepted:{seed}")
    items: list[Item] = []
    t = BASE_MS + 30 * 60_000
    launch = {
        "event_id": f"fuzz-launch-{seed}",
        "campaign_id": FUZZ_CAMPAIGN,
        "text": "x" * MAX_TEXT,
        "sender_id": "FUZZ",
        "sms_type": "s" * MAX_ID,
        "created_at": MIN_TS,
        "launched_at": t,
        **FUZZ_LAUNCH,
    }
    items.append(
        Item(
            CAMPAIGNS,
            FUZZ_CAMPAIGN.encode(),
            encode(RECORD_OF[CAMPAIGNS], launch),
            ACCEPTED,
            None,
            "launch-kind-OTHER-boundaries",
            {"launch": FUZZ_LAUNCH},
        )
    )
    phones = list(UNPARSEABLE_PHONES) + [f" {p} " for p in UNPARSEABLE_PHONES[:3]]
    for i, phone in enumerate(phones):
        mid = f"fuzz-{seed}-m{i}" if i else "m" * (MAX_ID - len(str(seed))) + str(seed)  # one id at the limit
        send = {
            "event_id": f"fuzz-{seed}-s{i}",
            "campaign_id": FUZZ_CAMPAIGN,
            "message_id": mid,
            "contact_id": "",
            "phone": phone,
            "sent_at": t + i,
            "outcome": "NOT_SENT",
            "not_sent_reason": "INVALID_NUMBER",
            "segments": 0,
            "credits": 0.0,
            "provider": None,
            "country": None,
            "operator": None,
        }
        framing = "confluent" if i % 3 == 2 else "single-object"
        value = (
            encode(RECORD_OF[MESSAGE_SENT], send)
            if framing == "single-object"
            else confluent(rng.randrange(1, 2**31), body(RECORD_OF[MESSAGE_SENT], send))
        )
        items.append(
            Item(
                MESSAGE_SENT,
                mid.encode(),
                value,
                ACCEPTED,
                None,
                f"unparseable-phone-send-{framing}",
                {"not_sent": {"INVALID_NUMBER": 1}, "message": (mid, phone.strip())},
            )
        )
        if i % 2 == 0:  # a stray receipt: NOT_SENT is final, it changes nothing
            dlr = {
                "event_id": f"fuzz-{seed}-r{i}",
                "message_id": mid,
                "campaign_id": "",
                "provider": "SMPP",
                "status": "DELIVRD",
                "error_code": None,
                "done_at": None,
                "received_at": t + i + 1,
            }
            items.append(
                Item(DLR, mid.encode(), encode(RECORD_OF[DLR], dlr), ACCEPTED, None, "receipt-for-not-sent", {})
            )
    for i, phone in enumerate(UNPARSEABLE_PHONES[:6]):
        p = f"{phone}-{seed}-{i}"[:MAX_PHONE]
        uns = {
            "event_id": f"fuzz-{seed}-u{i}",
            "phone": p,
            "contact_id": None,
            "campaign_id": FUZZ_CAMPAIGN if i % 2 == 0 else None,
            "action": "UNSUBSCRIBE" if i % 2 == 0 else "RESUBSCRIBE",
            "channel": "LINK" if i % 2 == 0 else "MANUAL",
            "text": "t" * MAX_TEXT,
            "at": t + 100 + i,
        }
        items.append(
            Item(
                UNSUBSCRIBES,
                p.encode(),
                encode(RECORD_OF[UNSUBSCRIBES], uns),
                ACCEPTED,
                None,
                f"unparseable-phone-{uns['action'].lower()}",
                {"unsubscribed": 1} if i % 2 == 0 else {},
            )
        )
    # National format, not a mobile the simulator writes (09: VoIP): normalized, not flagged.
    nat = f"09 {rng.randrange(10, 100)} {rng.randrange(10, 100)} {rng.randrange(10, 100)} {rng.randrange(10, 100)}"
    uns = {
        "event_id": f"fuzz-{seed}-u-nat",
        "phone": nat,
        "contact_id": None,
        "campaign_id": FUZZ_CAMPAIGN,
        "action": "UNSUBSCRIBE",
        "channel": "STOP_KEYWORD",
        "text": "STOP",
        "at": t + 200,
    }
    items.append(
        Item(
            UNSUBSCRIBES,
            nat.encode(),
            encode(RECORD_OF[UNSUBSCRIBES], uns),
            ACCEPTED,
            None,
            "national-format-unsubscribe",
            {"unsubscribed": 1},
        )
    )
    return items


GENERATORS = (
    "random_bytes",
    "empty_values",
    "truncated",
    "unknown_fingerprints",
    "confluent_frames",
    "wrong_record_types",
    "contract_violations",
)


def bad_records(seed: int, huge: bool = True) -> list[Item]:
    """Every kind of bad record on all four input topics, plus the accepted odd ones."""
    items: list[Item] = []
    for topic in INPUT_TOPICS:
        items += random_bytes(topic, seed)
        items += empty_values(topic, seed)
        items += truncated(topic, seed)
        items += unknown_fingerprints(topic, seed)
        items += confluent_frames(topic, seed)
        items += wrong_record_types(topic, seed)
        items += contract_violations(
            topic, seed, huge=huge, framings=("single-object", "confluent") if seed % 2 else ("single-object",)
        )
    items += accepted(seed)
    return items


def interleave(seed: int, good: list, bad: list) -> list:
    """``bad`` spread through ``good`` at random places, each list keeping its own order."""
    rng = random.Random(f"interleave:{seed}")
    marks = sorted(rng.randrange(len(good) + 1) for _ in bad)
    out, j = [], 0
    for i, g in enumerate(good):
        while j < len(bad) and marks[j] == i:
            out.append(bad[j])
            j += 1
        out.append(g)
    out.extend(bad[j:])
    return out


def expected_fuzz_stats(items: Iterable[Item]) -> dict:
    """What CampaignStats must say for FUZZ_CAMPAIGN after every accepted item is in."""
    not_sent: Counter = Counter()
    unsubscribed = 0
    launch: dict = {}
    for it in items:
        if it.outcome != ACCEPTED:
            continue
        not_sent.update(it.effect.get("not_sent", {}))
        unsubscribed += it.effect.get("unsubscribed", 0)
        launch.update(it.effect.get("launch", {}))
    n = sum(not_sent.values())
    return {
        "sent": 0,
        "not_sent": n,
        "not_sent_by_reason": dict(not_sent),
        "status_counts": {"NOT_SENT": n} if n else {},
        "unsubscribed": unsubscribed,
        "credits": 0.0,
        **launch,
    }


# -- mutations of valid encodings (the fuzz tests and the soak) -------------------------


def flip_bits(data: bytes, positions: Iterable[int]) -> bytes:
    b = bytearray(data)
    for p in positions:
        b[(p // 8) % len(b)] ^= 1 << (p % 8)
    return bytes(b)


def long_zigzag(n: int) -> bytes:
    """Avro's varint encoding of a long, to splice absurd lengths into a body."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
