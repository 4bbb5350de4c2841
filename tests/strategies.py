"""Shared hypothesis strategies: valid input records as plain dicts (what a decoder yields).

Timestamps are int milliseconds on a coarse grid (``tick`` = 6 h from ``T0``) so that ties
between carrier times are frequent (rule 3's precedence) and a 72 h timeout or attribution
window (12 ticks) is crossed often, while worlds stay small and runs fast.

Profiles (``SMSTALLY_HYPOTHESIS_PROFILE``): ``fast`` (default) keeps the processors' test
files under a minute; ``ci`` and ``soak`` run more examples (a longer soak); ``noshrink``
reports the first failing world without minimizing it (whole-world shrinking takes minutes).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

_SUPPRESS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]
settings.register_profile("fast", max_examples=100, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("soak", max_examples=3000, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("ci", max_examples=400, deadline=None, suppress_health_check=_SUPPRESS)
# Report the first failure without shrinking (whole-world shrinking can take minutes).
settings.register_profile(
    "noshrink",
    max_examples=100,
    deadline=None,
    suppress_health_check=_SUPPRESS,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("SMSTALLY_HYPOTHESIS_PROFILE", "fast"))

#: Fewer examples for the expensive whole-topology properties (scaled with the profile).
HEAVY = settings(max_examples=max(20, settings.default.max_examples // 3))

HOUR = 3_600_000
T0 = 1_700_000_000_000  # 2023-11-14, a valid millisecond timestamp
TICK = 6 * HOUR
MAX_TICK = 16  # 96 h: past the default 72 h timeout / attribution window


def ts(tick: int) -> int:
    return T0 + tick * TICK


ticks = st.integers(0, MAX_TICK)

# --- phones ------------------------------------------------------------------------------
#: E.164 numbers and ways an upstream may write them; the oracle maps renderings back.
E164_POOL = [f"+3361234560{i}" for i in range(1, 7)]
INVALID_PHONES = ["not-a-phone", "12"]


def renderings(e164: str) -> list[str]:
    national = "0" + e164[3:]
    spaced = " ".join([national[:2]] + [national[i : i + 2] for i in range(2, 10, 2)])
    return [e164, national, spaced, "0033" + e164[3:], "+33 " + e164[3:]]


PHONE_OF: dict[str, str] = {r: e for e in E164_POOL for r in renderings(e)}
PHONE_OF.update({p: p for p in INVALID_PHONES})


@st.composite
def phone_renderings(draw, pool: list[str]) -> str:
    base = draw(st.sampled_from(pool))
    if base in INVALID_PHONES:
        return base
    return draw(st.sampled_from(renderings(base)))


# --- receipt vocabularies ---------------------------------------------------------------
PROVIDERS = [None, "smpp", "twilio", "vonage", "infobip", "smsmode", "acme", "TWILIO", "Vonage", "SmsMode"]
RAW_WORDS = [
    # SMPP
    "ENROUTE",
    "ACCEPTD",
    "SCHEDULED",
    "BUFFRED",
    "DELIVRD",
    "EXPIRED",
    "UNDELIV",
    "REJECTD",
    "DELETED",
    "FAILED",
    "UNKNOWN",
    # Twilio
    "queued",
    "accepted",
    "scheduled",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    # Vonage
    "buffered",
    "expired",
    "rejected",
    "unknown",
    # Infobip
    "PENDING",
    "DELIVERED",
    "UNDELIVERABLE",
    "REJECTED",
    # canonical names from an upstream that already normalizes
    "PROVIDER_ACCEPTED",
    "SOFT_BOUNCE",
    "PROVIDER_ERROR",
    "HARD_BOUNCE",
    # unrecognized
    "whatever",
    "OK",
    "bounced",
    "DELIVERD",
]
ERROR_CODES = [
    None,
    "",
    "abc",
    "1.0",
    "0",
    "1",
    "001",
    "9",
    "11",
    "12",
    " 12 ",
    "2",
    "3",
    "4",
    "5",
    "30005",
    "30006",
    "30007",
    "3519",
    "3520",
    "3525",
    "3529",
    "3530",
    "0003",
]


def _recase(word: str, how: str) -> str:
    return {"lower": word.lower(), "upper": word.upper(), "title": word.title(), "asis": word, "pad": f" {word} "}[how]


raw_statuses = st.builds(
    _recase, st.sampled_from(RAW_WORDS), st.sampled_from(["asis", "asis", "lower", "upper", "title", "pad"])
)
error_codes = st.sampled_from(ERROR_CODES)
providers = st.sampled_from(PROVIDERS)


# --- single records ----------------------------------------------------------------------
@st.composite
def sends(
    draw,
    message_id: str = "m0",
    campaign_id: str = "c0",
    phone: str | None = None,
    outcome=None,
    event_id: str | None = None,
) -> dict:
    outcome = outcome or draw(st.sampled_from(["SUBMITTED"] * 5 + ["PROVIDER_ERROR", "NOT_SENT"]))
    rec = {
        "event_id": event_id or f"s-{message_id}",
        "campaign_id": campaign_id,
        "message_id": message_id,
        "contact_id": draw(st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"]))),
        "phone": phone or draw(phone_renderings(E164_POOL)),
        "sent_at": ts(draw(ticks)),
        "outcome": outcome,
        "not_sent_reason": None,
        "segments": draw(st.integers(1, 3)),
        "credits": draw(st.integers(0, 500)) / 100,
        "provider": draw(st.sampled_from([None, "smpp", "twilio"])),
        "country": "FR",
        "operator": draw(st.sampled_from([None, "orange", "sfr"])),
    }
    if outcome == "NOT_SENT":
        rec["not_sent_reason"] = draw(
            st.sampled_from(
                [None, "HARD_BOUNCE", "OPTED_OUT", "INVALID_NUMBER", "INSUFFICIENT_CREDIT", "DUPLICATE", "OTHER"]
            )
        )
    return rec


#: Codes that are permanent for a provider (zero-padded sometimes), to make hard bounces common.
PERMANENT_SAMPLES = {"twilio": ["30005", "30006"], "vonage": ["3", "04"], "smsmode": ["3520", "3529"]}
DEFAULT_PERMANENT_SAMPLES = ["1", "009", "11", "12"]


@st.composite
def receipts(draw, message_id: str = "m0", campaign_id: str | None = "c0", event_id: str = "r-m0-0") -> dict:
    received = draw(ticks)
    provider = draw(providers)
    permanent = PERMANENT_SAMPLES.get((provider or "").lower(), DEFAULT_PERMANENT_SAMPLES)
    return {
        "event_id": event_id,
        "message_id": message_id,
        "campaign_id": draw(st.sampled_from([campaign_id, None])),
        "provider": provider,
        "status": draw(raw_statuses),
        "error_code": draw(st.one_of(error_codes, st.sampled_from(permanent))),
        "done_at": draw(st.one_of(st.none(), ticks.map(ts))),
        "received_at": ts(received),
    }


@st.composite
def message_events(draw, max_receipts: int = 6) -> tuple[dict, list[dict]]:
    """One message: its send and 0..max_receipts receipts from mixed vocabularies."""
    send = draw(sends())
    n = draw(st.integers(0, max_receipts))
    return send, [draw(receipts(event_id=f"r-m0-{j}")) for j in range(n)]


# --- a small campaign world --------------------------------------------------------------
SEND, DLR, UNSUB, LAUNCH = "sms.message-sent", "sms.dlr", "sms.unsubscribes", "sms.campaigns"


@dataclass
class World:
    partitions: int
    campaigns: list[str]
    launches: list[dict] = field(default_factory=list)
    sends: list[dict] = field(default_factory=list)
    receipts: list[dict] = field(default_factory=list)
    unsubscribes: list[dict] = field(default_factory=list)

    @property
    def phase1(self) -> list[tuple[str, dict]]:
        return (
            [(LAUNCH, r) for r in self.launches] + [(SEND, r) for r in self.sends] + [(DLR, r) for r in self.receipts]
        )

    @property
    def phase2(self) -> list[tuple[str, dict]]:
        return [(UNSUB, r) for r in self.unsubscribes]

    def __repr__(self) -> str:  # readable falsifying examples
        lines = [f"World(partitions={self.partitions}, campaigns={self.campaigns})"]
        for topic, r in self.phase1 + self.phase2:
            lines.append(f"  {topic}: {r}")
        return "\n".join(lines)


@st.composite
def worlds(
    draw,
    max_messages: int = 30,
    max_receipts: int = 4,
    max_unsubscribes: int = 10,
    partitions: st.SearchStrategy[int] = st.integers(1, 4),
) -> World:
    campaigns = [f"c{i}" for i in range(draw(st.integers(2, 3)))]
    pool = E164_POOL[: draw(st.integers(1, len(E164_POOL)))]
    if draw(st.integers(0, 4)) == 0:
        pool = pool + INVALID_PHONES[:1]
    w = World(draw(partitions), campaigns)
    for cid in campaigns:
        if draw(st.booleans()):
            w.launches.append(
                {
                    "event_id": f"l-{cid}",
                    "campaign_id": cid,
                    "name": f"Campaign {cid}",
                    "kind": draw(st.sampled_from(["BATCH", "AUTOMATED"])),
                    "text": "Hello",
                    "sender_id": "ACME",
                    "sms_type": draw(st.sampled_from(["marketing", "transactional"])),
                    "created_at": ts(0),
                    "launched_at": ts(draw(ticks)),
                    "launch_list_size": draw(st.integers(0, 50)),
                }
            )
    for i in range(draw(st.integers(1, max_messages))):
        mid = f"m{i}"
        cid = draw(st.sampled_from(campaigns))
        if draw(st.integers(0, 9)) != 0:  # ~10% of messages are never sent: orphan receipts
            w.sends.append(draw(sends(mid, cid, phone=draw(phone_renderings(pool)))))
        for j in range(draw(st.integers(0, max_receipts))):
            w.receipts.append(draw(receipts(mid, cid, event_id=f"r-{mid}-{j}")))
    for k in range(draw(st.integers(0, max_unsubscribes))):
        w.unsubscribes.append(
            {
                "event_id": f"u{k}",
                "phone": draw(phone_renderings(pool)),
                "contact_id": draw(st.one_of(st.none(), st.just("k1"))),
                "campaign_id": draw(st.sampled_from([None, None] + campaigns)),
                "action": draw(st.sampled_from(["UNSUBSCRIBE"] * 3 + ["RESUBSCRIBE"])),
                "channel": draw(
                    st.sampled_from(["STOP_KEYWORD", "STOP_KEYWORD", "LINK", "MANUAL", "COMPLAINT", "OTHER"])
                ),
                "text": draw(st.sampled_from([None, "STOP", "stop svp"])),
                "at": ts(draw(ticks)),
            }
        )
    return w


# --- delivery schedules --------------------------------------------------------------------
DRAIN = ("drain", None)


def redelivered(rng: random.Random, items: list, dup_rate: float = 0.3) -> list:
    """A permutation of ``items`` with some items delivered more than once, anywhere."""
    out = list(items)
    for item in items:
        while rng.random() < dup_rate:
            out.append(item)
    rng.shuffle(out)
    return out


def with_drains(rng: random.Random, items: list, rate: float = 0.15) -> list:
    out = []
    for item in items:
        out.append(item)
        if rng.random() < rate:
            out.append(DRAIN)
    return out


def first_occurrences(items: list) -> list:
    seen, out = set(), []
    for topic, rec in items:
        key = (topic, rec["event_id"]) if rec is not None else None
        if rec is None or key not in seen:
            out.append((topic, rec))
            if key is not None:
                seen.add(key)
    return out
