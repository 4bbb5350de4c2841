"""A messy, realistic SMS campaign day, and what smstally must make of it.

``generate(seed, messages, campaigns)`` builds the records an upstream platform would
publish (campaign launches, sends, provider receipts, opt-outs) together with the
statistics, statuses and address-book removals the contract (sections 3-7) implies for
them. It is pure: no Kafka, no clock, no I/O; the same seed gives the same records.

The traffic comes in two phases. Phase 1 is the day itself, in publish order: launches,
sends, receipts (some duplicated, some out of order, some before their send, ~30 %
without campaign_id) and link unsubscribes carrying their campaign_id. Phase 2 is
published once phase 1 has been processed: STOP replies without campaign_id (attributed
by the 72 h rule to the phone's latest SUBMITTED message), resubscriptions and
re-unsubscriptions. The barrier matters only for attribution ("a send processed only
after the unsubscribe does not re-attribute it").

The expected results are computed from what the generator *meant* each message to end
as, independently of processors/; ``simulator.reference.fold`` recomputes them from the
records alone, by the contract's rules, and the tests check both agree.

Decisions the contract leaves open, taken here:

* A ``NOT_SENT`` message without ``not_sent_reason`` is counted under reason ``OTHER``.
* ``launch_list_size`` is the campaign's number of messages for a BATCH campaign and 0
  for an AUTOMATED one (it has no list; it fires on triggers).
* Expected phones are E.164: a string that already looks like E.164 ("+" and digits, as
  the generator writes only valid mobiles) is taken as is, anything else goes through
  ``phonenumbers`` with region FR; a string that does not parse is kept as given.
* Nothing published is older than the launch of an AUTOMATED campaign (a few days before
  the day) and everything happens within a few hours: no 72 h timeout and no 24 h
  orphan-receipt window is ever reached.
"""

from __future__ import annotations

import gc
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import phonenumbers

from . import vocab as V

TOPIC_CAMPAIGNS = "sms.campaigns"
TOPIC_MESSAGE_SENT = "sms.message-sent"
TOPIC_DLR = "sms.dlr"
TOPIC_UNSUBSCRIBES = "sms.unsubscribes"

R_CAMPAIGN = "smstally.CampaignLaunched"
R_SENT = "smstally.MessageSent"
R_DLR = "smstally.DeliveryReceipt"
R_UNSUB = "smstally.Unsubscribe"

DEFAULT_BASE_MS = int(datetime(2026, 11, 23, 8, 0, tzinfo=UTC).timestamp() * 1000)
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
ATTRIBUTION_WINDOW_MS = 72 * HOUR
AUTOMATED_SPAN_MS = 5 * HOUR

SUBMITTED = "SUBMITTED"
HARD_BOUNCE = V.HARD_BOUNCE
PROVIDER_ERROR = V.PROVIDER_ERROR
NOT_SENT = V.NOT_SENT


@dataclass(frozen=True, slots=True)
class Emit:
    """One record to publish: topic (contract default name), key, Avro record name, value."""

    topic: str
    key: str
    record_name: str
    value: dict


_new = object.__new__
_set_topic = Emit.topic.__set__  # type: ignore[attr-defined]
_set_key = Emit.key.__set__  # type: ignore[attr-defined]
_set_name = Emit.record_name.__set__  # type: ignore[attr-defined]
_set_value = Emit.value.__set__  # type: ignore[attr-defined]


def _emit(topic: str, key: str, record_name: str, value: dict) -> Emit:
    # Same object as Emit(...), without the frozen dataclass's per-field object.__setattr__
    # (a third of the generation time for a million messages).
    e = _new(Emit)
    _set_topic(e, topic)
    _set_key(e, key)
    _set_name(e, record_name)
    _set_value(e, value)
    return e


@dataclass
class Expected:
    """What smstally must report once both phases are processed."""

    # campaign_id -> {"sent", "not_sent", "not_sent_by_reason": {reason: n},
    #   "status_counts": {status: n} (zeros omitted), "unsubscribed", "credits" (float),
    #   "name", "kind", "launch_list_size"}
    stats: dict[str, dict]
    # ("PERMANENT_ERROR", phone_e164, message_id) / ("BLACKLISTED", phone_e164, unsubscribe event_id)
    removals: set[tuple]
    message_status: dict[str, str]  # message_id -> final canonical status
    blacklisted: set[str]  # phones (E.164 where parseable) blacklisted at the end
    # contract §11: phone -> the reasons in force at the end (phones with none left out)
    suppressed: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Scenario:
    phase1: list[Emit]  # the day, in publish order
    phase2: list[Emit]  # unsubscribes published after phase 1 has been processed
    expected: Expected
    traffic: dict[str, int] = field(default_factory=dict)  # what the messiness amounts to
    params: dict = field(default_factory=dict)

    def summary(self) -> str:
        return _summary(self)


#: Contract §11's time-to-delivery buckets: upper bounds in seconds, then "gt_259200".
DELIVERY_BOUNDS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200)


def delivery_bucket(ms: int) -> str:
    """``le_N``: above the previous bound and at most N seconds (negative: ``le_5``)."""
    return next((f"le_{b}" for b in DELIVERY_BOUNDS if ms <= b * 1000), "gt_259200")


@lru_cache(maxsize=65536)
def normalize(phone: str, region: str = "FR") -> str:
    """E.164 for the expected sets; a phone that cannot be parsed is kept as given."""
    if phone[:1] == "+" and phone[1:].isdigit():
        return phone
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _national(e164: str, style: int) -> str:
    """+33612345678 written the French way: 06 12 34 56 78 / 0612345678 / 06.12.34.56.78."""
    d = "0" + e164[3:]
    if style == 0:
        return f"{d[0:2]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:10]}"
    if style == 1:
        return d
    return f"{d[0:2]}.{d[2:4]}.{d[4:6]}.{d[6:8]}.{d[8:10]}"


_BATCH_NAMES = (
    "Black Friday -30%",
    "Soldes d'hiver",
    "Vente privée VIP",
    "Nouvelle collection",
    "Fête des pères",
    "Déstockage printemps",
    "Cyber Monday",
    "Offre fidélité",
)
_AUTOMATED_NAMES = (
    "Relance panier abandonné",
    "Code anniversaire",
    "Bienvenue nouveau client",
    "Rappel rendez-vous",
    "Confirmation de commande",
)
_SENDERS = ("BOUTIQUE", "MAMARQUE", "SHOPFR", "INFO")


def generate(seed: int = 1, messages: int = 2000, campaigns: int = 5, base_time_ms: int | None = None) -> Scenario:
    """Build the traffic of one campaign day and its expected outcome (deterministic per seed).

    ``messages`` is the number of distinct messages (MessageSent records, not counting
    re-published duplicates). About 2 GB and 10-20 s per million messages.
    """
    # Millions of small dicts and no cycles: the cyclic collector would only rescan them
    # over and over (a third of the time at a million messages).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(seed, messages, campaigns, base_time_ms)
    finally:
        if was_enabled:
            gc.enable()


def _generate(seed: int, messages: int, campaigns: int, base_time_ms: int | None) -> Scenario:
    if messages < 0:
        raise ValueError("messages must be >= 0")
    if campaigns < 1:
        raise ValueError("campaigns must be >= 1")
    base = DEFAULT_BASE_MS if base_time_ms is None else int(base_time_ms)
    rng = random.Random(seed)
    rnd = rng.random
    pfx = f"{seed}-"
    traffic: dict[str, int] = dict.fromkeys(
        (
            "campaign_launches",
            "campaign_relaunches",
            "late_campaign_launches",
            "message_sent",
            "message_sent_duplicates",
            "national_format_phones",
            "unparseable_phones",
            "receipts",
            "receipt_duplicates",
            "receipts_without_campaign_id",
            "receipts_without_done_at",
            "early_receipts",
            "non_final_receipts",
            "delayed_non_final_receipts",
            "messages_with_two_final_receipts",
            "final_receipts_published_out_of_order",
            "done_at_ties",
            "stray_receipts_for_not_sent",
            "provider_error_overridden_by_receipt",
            "link_unsubscribes",
            "complaint_unsubscribes",
            "stop_replies",
            "stop_replies_unattributed",
            "stop_from_never_messaged_phone",
            "resubscribes",
            "unsubscribes_after_resubscribe",
            "repeated_unsubscribes_while_blacklisted",
            "unsubscribe_duplicates",
        ),
        0,
    )

    # Publish order: every phase-1 record gets a publish time; the list is sorted by
    # (publish time, creation order). Times are kept relative to `origin` so that they
    # stay small ints, which list.sort compares fastest.
    origin = base - HOUR
    emits: list[Emit] = []
    pubs: list[int] = []
    emits_append = emits.append
    pubs_append = pubs.append

    def put(pub: int, topic: str, key: str, rname: str, value: dict) -> None:
        pubs_append(pub - origin)
        emits_append(_emit(topic, key, rname, value))

    # ---------------------------------------------------------------- campaigns
    C = campaigns
    kinds = ["AUTOMATED" if k % 3 == 1 else "BATCH" for k in range(C)]
    weights = [rng.uniform(0.5, 2.0) * (1.5 if kinds[k] == "BATCH" else 1.0) for k in range(C)]
    camp = rng.choices(range(C), weights=weights, k=messages)
    for k in range(min(C, messages)):
        camp[k] = k
    counts = [0] * C
    for c in camp:
        counts[c] += 1
    n_batch = kinds.count("BATCH")
    spacing = min(40 * MINUTE, AUTOMATED_SPAN_MS // max(1, n_batch))
    cids = [f"cmp-{seed}-{k + 1:02d}" for k in range(C)]
    starts = [0] * C  # first possible sent_at
    windows = [0] * C  # sends spread over [start, start + window)
    late_launch = next((k for k in range(C - 1, 0, -1) if kinds[k] == "BATCH"), None) if C >= 3 else None
    first_batch = kinds.index("BATCH")
    names: list[str] = [""] * C
    jb = ja = 0
    for k in range(C):
        if kinds[k] == "BATCH":
            launched = base + jb * spacing
            name = _BATCH_NAMES[jb % len(_BATCH_NAMES)] + (
                f" #{jb // len(_BATCH_NAMES) + 1}" if jb >= len(_BATCH_NAMES) else ""
            )
            jb += 1
            starts[k] = launched
            windows[k] = min(60 * MINUTE, max(5 * MINUTE, counts[k] * 10))
            pub = launched - 2 * SECOND
            if k == late_launch:  # its launch record arrives after its first sends
                pub = launched + 20 * SECOND
                traffic["late_campaign_launches"] += 1
            sms_type = "marketing"
            list_size = counts[k]
        else:
            launched = base - (3 + k) * DAY
            name = _AUTOMATED_NAMES[ja % len(_AUTOMATED_NAMES)] + (
                f" #{ja // len(_AUTOMATED_NAMES) + 1}" if ja >= len(_AUTOMATED_NAMES) else ""
            )
            ja += 1
            starts[k] = base
            windows[k] = AUTOMATED_SPAN_MS
            pub = base - 5 * MINUTE
            sms_type = "transactional" if ja % 2 else "marketing"
            list_size = 0
        value = {
            "event_id": f"{pfx}cl-{k}-1",
            "campaign_id": cids[k],
            "name": name,
            "kind": kinds[k],
            "text": f"{_SENDERS[k % len(_SENDERS)]}: {name} ! Profitez-en sur shop.example/{k}. STOP au 36111",
            "sender_id": _SENDERS[k % len(_SENDERS)],
            "sms_type": sms_type,
            "created_at": launched - int(HOUR + rnd() * 4 * DAY),
            "launched_at": launched,
            "launch_list_size": list_size,
        }
        put(pub, TOPIC_CAMPAIGNS, cids[k], R_CAMPAIGN, value)
        traffic["campaign_launches"] += 1
        names[k] = name
        if k == first_batch or rnd() < 0.4:  # re-sent with a corrected name: the last one counts
            names[k] = name + " (corrigé)"
            again = dict(value, event_id=f"{pfx}cl-{k}-2", name=names[k])
            put(pub + int(5 * MINUTE + rnd() * 25 * MINUTE), TOPIC_CAMPAIGNS, cids[k], R_CAMPAIGN, again)
            traffic["campaign_launches"] += 1
            traffic["campaign_relaunches"] += 1

    # ---------------------------------------------------------------- people
    P = max(10, int(messages * 0.6))
    pe164: list[str] = []
    pcountry: list[str] = []
    taken: set[str] = set()
    # (E.164 prefix, country) slots: 75 % FR, 13 % BE, 12 % ES, spread over valid mobile ranges
    slots: list[tuple[str, str]] = []
    slot_cum: list[float] = []
    acc = 0.0
    for cc, country, share, prefixes in (
        ("33", "FR", 0.75, V.FR_MOBILE_PREFIXES),
        ("32", "BE", 0.13, V.BE_MOBILE_PREFIXES),
        ("34", "ES", 0.12, V.ES_MOBILE_PREFIXES),
    ):
        for prefix in prefixes:
            acc += share / len(prefixes)
            slots.append((f"+{cc}{prefix}", country))
            slot_cum.append(acc)
    slot_cum[-1] = 1.0

    def new_number() -> tuple[str, str]:
        while True:
            prefix, country = slots[bisect_right(slot_cum, rnd())]
            e = f"{prefix}{int(rnd() * 10_000_000):07d}"
            if e not in taken:
                taken.add(e)
                return e, country

    pe164_append = pe164.append
    pcountry_append = pcountry.append
    for _ in range(P):
        prefix, country = slots[bisect_right(slot_cum, rnd())]
        e = f"{prefix}{int(rnd() * 10_000_000):07d}"
        while e in taken:
            e = f"{prefix}{int(rnd() * 10_000_000):07d}"
        taken.add(e)
        pe164_append(e)
        pcountry_append(country)
    operators = V.OPERATORS
    T = min(P, max(12, P // 20))
    tracked = bytearray(P)
    for p in rng.sample(range(P), T):
        tracked[p] = 1
    sends: dict[int, list[tuple[int, int, str, str]]] = {}  # tracked person -> (sent_at, c, outcome, mid)

    # ---------------------------------------------------------------- expected accumulators
    st_sent = [0] * C
    st_not_sent = [0] * C
    st_reasons: list[dict[str, int]] = [{} for _ in range(C)]
    st_status: list[dict[str, int]] = [{} for _ in range(C)]
    st_credits = [0.0] * C
    st_delivery: list[dict[str, int]] = [{} for _ in range(C)]  # contract §11
    st_provider: list[dict[str, dict[str, int]]] = [{} for _ in range(C)]
    st_operator: list[dict[str, dict[str, int]]] = [{} for _ in range(C)]
    message_status: dict[str, str] = {}
    removals: set[tuple] = set()
    hard_bounced: dict[str, list[int]] = {}  # phone -> carrier times of its HARD_BOUNCE messages (§11)

    providers = V.PROVIDERS
    prov_cum = []
    acc = 0
    for w in V.PROVIDER_WEIGHTS:
        acc += w
        prov_cum.append(acc / sum(V.PROVIDER_WEIGHTS))
    reason_cum = []
    acc = 0
    for w in V.NOT_SENT_REASON_WEIGHTS:
        acc += w
        reason_cum.append(acc / sum(V.NOT_SENT_REASON_WEIGHTS))
    prov_cum[-1] = reason_cum[-1] = 1.0  # bisect on rnd() < 1.0 never runs past the end
    vocab = V.VOCAB
    unparseable = V.UNPARSEABLE_PHONES

    def pick(seq):
        return seq[int(rnd() * len(seq))]

    # ------------------------------------------------------------ receipt plans
    # A plan is a list of (raw status, error code, done_at, received_at) plus the status
    # the message ends in. Carrier time = done_at, else received_at.
    counters = traffic

    def final(out, raw, code, carrier, done_p=0.85):
        if rnd() < done_p:
            out.append((raw, code, carrier, carrier + 100 + int(rnd() * 2900)))
        else:
            out.append((raw, code, None, carrier))

    def soft(vc):
        if vc["expired"] and rnd() < 0.4:
            # EXPIRED means SOFT_BOUNCE whatever the code, even one that is permanent elsewhere
            return pick(vc["expired"]), (pick(vc["hard_codes"]) if rnd() < 0.1 else None)
        return pick(vc["failure"]), (None if rnd() < 0.25 else pick(vc["soft_codes"]))

    def hard(vc):
        return pick(vc["failure"]), pick(vc["hard_codes"])

    def other_final(vc, status):
        if status == V.DELIVERED:
            return pick(vc["delivered"]), None
        if status == V.SOFT_BOUNCE:
            return soft(vc)
        if status == V.HARD_BOUNCE:
            return hard(vc)
        if status == V.UNKNOWN:
            return pick(vc["unknown"]), None
        return V.PROVIDER_ACCEPTED, None

    def two_finals(out, vc, s, tf, loser, winner, tie):
        """`loser` then `winner`: later carrier time (or, on a tie, precedence) wins."""
        counters["messages_with_two_final_receipts"] += 1
        lraw, lcode = other_final(vc, loser)
        wraw, wcode = other_final(vc, winner)
        if tie:
            counters["done_at_ties"] += 1
            final(out, wraw, wcode, tf, done_p=1.0)
            if rnd() < 0.2:  # loser without done_at, received exactly then: still a tie
                out.append((lraw, lcode, None, tf))
            else:
                out.append((lraw, lcode, tf, tf + 50 + int(rnd() * 5000)))
            return
        t2 = tf + MINUTE + int(rnd() * 40 * MINUTE)
        final(out, wraw, wcode, t2)
        if rnd() < 0.3:  # the older receipt arrives last
            counters["final_receipts_published_out_of_order"] += 1
            out.append((lraw, lcode, tf, out[-1][3] + SECOND + int(rnd() * 5 * MINUTE)))
        else:
            final(out, lraw, lcode, tf)

    def intermediates(out, vc, s, tf, n):
        finals = len(out)
        words = vc["pending"]
        for _ in range(n):
            t = s + 200 + int(rnd() * (tf - s - 200))
            r = rnd()
            if r < 0.1:  # arrives after the final receipts
                last_recv = max([x[3] for x in out[:finals]]) if finals else tf
                recv = last_recv + SECOND + int(rnd() * 2 * MINUTE)
                counters["delayed_non_final_receipts"] += 1
            else:
                recv = t + 20 + int(r * 4000)
            out.append((words[int(rnd() * len(words))], None, t if r > 0.7 else None, recv))
        counters["non_final_receipts"] += n

    def n_intermediate():
        r = rnd()
        return 0 if r < 0.4 else (1 if r < 0.85 else 2)

    def plan_submitted(vc, s):
        out: list = []
        tf = s + 2 * SECOND + int(rnd() * rnd() * 10 * MINUTE)
        t = rnd()
        if t < 0.78:
            status = V.DELIVERED
            v = rnd()
            if v < 0.88:
                words = vc["delivered"]
                raw = words[int(rnd() * len(words))]
                if v < 0.75:  # (0.85 of 0.88) with done_at
                    out.append((raw, None, tf, tf + 100 + int(rnd() * 2900)))
                else:
                    out.append((raw, None, None, tf))
            elif v < 0.94:
                two_finals(out, vc, s, tf, V.SOFT_BOUNCE if rnd() < 0.6 else V.UNKNOWN, status, False)
            elif v < 0.97:
                two_finals(out, vc, s, tf, pick((V.SOFT_BOUNCE, V.UNKNOWN, V.PROVIDER_ACCEPTED)), status, True)
            else:
                two_finals(out, vc, s, tf, V.PROVIDER_ACCEPTED, status, False)
        elif t < 0.83:
            status = V.PENDING
            if rnd() < 0.5:
                return out, status
            intermediates(out, vc, s, tf, 1 + (rnd() < 0.4))
            return out, status
        elif t < 0.89:
            status = V.SOFT_BOUNCE
            v = rnd()
            if v < 0.85:
                raw, code = soft(vc)
                final(out, raw, code, tf)
            elif v < 0.95:
                two_finals(out, vc, s, tf, V.UNKNOWN, status, False)
            else:
                two_finals(out, vc, s, tf, pick((V.UNKNOWN, V.PROVIDER_ACCEPTED)), status, True)
        elif t < 0.93:
            status = V.HARD_BOUNCE
            v = rnd()
            if v < 0.8:
                raw, code = hard(vc)
                final(out, raw, code, tf)
            elif v < 0.95:
                two_finals(out, vc, s, tf, V.SOFT_BOUNCE, status, False)
            else:
                two_finals(out, vc, s, tf, pick((V.DELIVERED, V.SOFT_BOUNCE)), status, True)
        elif t < 0.97:
            status = V.UNKNOWN
            v = rnd()
            if v < 0.8:
                final(out, pick(vc["unknown"]), None, tf)
            elif v < 0.9:
                two_finals(out, vc, s, tf, V.PROVIDER_ACCEPTED, status, False)
            else:
                two_finals(out, vc, s, tf, V.PROVIDER_ACCEPTED, status, True)
        else:
            status = V.PROVIDER_ACCEPTED
            final(out, V.PROVIDER_ACCEPTED, None, tf)
        n = n_intermediate()
        if n:
            intermediates(out, vc, s, tf, n)
        return out, status

    def plan_provider_error(vc, s):
        out: list = []
        t = rnd()
        if t < 0.80:
            return out, PROVIDER_ERROR
        tf = s + 5 * SECOND + int(rnd() * 20 * MINUTE)
        if t < 0.88:  # non-final receipts never replace a final status
            intermediates(out, vc, s, tf, 1)
            return out, PROVIDER_ERROR
        # A later final receipt wins over PROVIDER_ERROR (final at sent_at, rule 3).
        counters["provider_error_overridden_by_receipt"] += 1
        v = rnd()
        status = V.DELIVERED if v < 0.6 else (V.SOFT_BOUNCE if v < 0.8 else (V.HARD_BOUNCE if v < 0.9 else V.UNKNOWN))
        raw, code = other_final(vc, status)
        final(out, raw, code, tf)
        return out, status

    def plan_not_sent(vc, s):
        out: list = []
        if rnd() < 0.08:  # a stray receipt: NOT_SENT is final at once, receipts never change it
            counters["stray_receipts_for_not_sent"] += 1
            raw, code = hard(vc) if rnd() < 0.5 else (pick(vc["delivered"]), None)
            final(out, raw, code, s + 5 * SECOND + int(rnd() * 5 * MINUTE))
        return out, NOT_SENT

    # ---------------------------------------------------------------- messages
    # The hot loop: publishing is inlined and counters are locals (a million messages).
    n_nat = n_unparseable = n_ms_dup = n_rec = n_rec_dup = n_nocid = n_nodone = n_early = 0
    tracked_sends = sends.setdefault
    for i in range(messages):
        c = camp[i]
        cid = cids[c]
        mid = f"msg-{seed}-{i:07d}"
        r = rnd()
        if r < 0.012:
            p = -1
            phone = unparseable[int(rnd() * 3)]
            country = operator = contact = None
            n_unparseable += 1
        else:
            p = int(rnd() * P)
            phone = pe164[p]
            country = pcountry[p]
            if r > 0.8 and country == "FR":
                phone = _national(phone, int(rnd() * 3))
                n_nat += 1
            ops = operators[country]
            operator = ops[p % len(ops)] if r > 0.1 else None
            contact = f"ct-{seed}-{p}" if r > 0.04 else None
        s = starts[c] + int(rnd() * windows[c])
        r = rnd()
        segments = 1 if r < 0.7 else (2 if r < 0.95 else 3)
        r = rnd()
        reason = None
        if p < 0 and r < 0.7:
            outcome, reason = NOT_SENT, "INVALID_NUMBER"
        elif r < 0.03:
            outcome = NOT_SENT
            reason = V.NOT_SENT_REASONS[bisect_right(reason_cum, rnd())]
        elif r < 0.05:
            outcome = PROVIDER_ERROR
        else:
            outcome = SUBMITTED
        if outcome == NOT_SENT:
            provider = None
            credits = 0.0
        else:
            provider = providers[bisect_right(prov_cum, rnd())]
            credits = segments * 0.25  # quarters: float sums stay exact
        value = {
            "event_id": f"{pfx}ms-{i}",
            "campaign_id": cid,
            "message_id": mid,
            "contact_id": contact,
            "phone": phone,
            "sent_at": s,
            "outcome": outcome,
            "not_sent_reason": reason,
            "segments": segments,
            "credits": credits,
            "provider": provider,
            "country": country,
            "operator": operator,
        }
        r = rnd()
        if r < 0.04:  # the send is published late: its receipts may overtake it
            ms_pub = s + 30 * SECOND + int(rnd() * 8 * MINUTE)
        else:
            ms_pub = s + 5 + int(r * 3000)  # 5-125 ms
        pubs_append(ms_pub - origin)
        e = _new(Emit)
        _set_topic(e, TOPIC_MESSAGE_SENT)
        _set_key(e, mid)
        _set_name(e, R_SENT)
        _set_value(e, value)
        emits_append(e)
        if r > 0.98:
            pubs_append(ms_pub + SECOND + int(rnd() * 15 * MINUTE) - origin)
            emits_append(_emit(TOPIC_MESSAGE_SENT, mid, R_SENT, dict(value)))
            n_ms_dup += 1

        # receipts
        if outcome == SUBMITTED:
            rprov = provider if rnd() >= 0.05 else None
            plan, status = plan_submitted(vocab[rprov], s)
        elif outcome == PROVIDER_ERROR:
            rprov = provider if rnd() >= 0.05 else None
            plan, status = plan_provider_error(vocab[rprov], s)
        else:
            rprov = providers[int(rnd() * 5)]
            plan, status = plan_not_sent(vocab[rprov], s)
        j = 0
        for raw, code, done, recv in plan:
            j += 1
            r = rnd()
            if r < 0.3:
                rcid = None
                n_nocid += 1
            else:
                rcid = cid
            if done is None:
                n_nodone += 1
            rec = {
                "event_id": f"{pfx}dlr-{i}-{j}",
                "message_id": mid,
                "campaign_id": rcid,
                "provider": rprov,
                "status": raw,
                "error_code": code,
                "done_at": done,
                "received_at": recv,
            }
            pubs_append(recv - origin)
            e = _new(Emit)
            _set_topic(e, TOPIC_DLR)
            _set_key(e, mid)
            _set_name(e, R_DLR)
            _set_value(e, rec)
            emits_append(e)
            if recv < ms_pub:
                n_early += 1
            if r > 0.96:
                pubs_append(recv + SECOND + int(rnd() * 10 * MINUTE) - origin)
                emits_append(_emit(TOPIC_DLR, mid, R_DLR, dict(rec)))
                n_rec_dup += 1
        n_rec += j

        # expected
        message_status[mid] = status
        sc = st_status[c]
        sc[status] = sc.get(status, 0) + 1
        if outcome == NOT_SENT:
            st_not_sent[c] += 1
            reason_key = reason or "OTHER"  # a NOT_SENT without reason counts under OTHER
            rc = st_reasons[c]
            rc[reason_key] = rc.get(reason_key, 0) + 1
        else:
            st_sent[c] += 1
            st_credits[c] += credits
            for by, key in ((st_provider[c], provider or "unknown"), (st_operator[c], operator or "unknown")):
                inner = by.setdefault(key, {})
                inner[status] = inner.get(status, 0) + 1
            if status == V.DELIVERED:
                # the delivering receipt of the plan (the only one in the delivered vocabulary)
                won = max(d if d is not None else r for raw, _, d, r in plan if raw in vocab[rprov]["delivered"])
                bucket = delivery_bucket(won - s)
                st_delivery[c][bucket] = st_delivery[c].get(bucket, 0) + 1
        if status == HARD_BOUNCE:
            removals.add(("PERMANENT_ERROR", normalize(phone), mid))
            # §11: in force after the phone's latest resubscribe only; the hard receipt of the
            # plan (a failure word with a permanent code) is the one that won
            vr = vocab[rprov]
            at = max(
                d if d is not None else r
                for raw, code, d, r in plan
                if raw in vr["failure"] and code in vr["hard_codes"]
            )
            hard_bounced.setdefault(normalize(phone), []).append(at)
        if p >= 0 and tracked[p]:
            tracked_sends(p, []).append((s, c, outcome, mid))
    traffic.update(
        message_sent=messages,
        message_sent_duplicates=n_ms_dup,
        national_format_phones=n_nat,
        unparseable_phones=n_unparseable,
        receipts=n_rec,
        receipt_duplicates=n_rec_dup,
        receipts_without_campaign_id=n_nocid,
        receipts_without_done_at=n_nodone,
        early_receipts=n_early,
    )

    # ---------------------------------------------------------------- unsubscribes
    unsub_phones: list[set[str]] = [set() for _ in range(C)]
    blacklisted: set[str] = set()
    resubscribed: dict[str, int] = {}  # phone -> its latest RESUBSCRIBE
    phase2_items: list[tuple[int, int, Emit]] = []
    n_uns = 0

    def attribute(p: int, at: int) -> int | None:
        best_t, best_c = -1, None
        for t, c, outcome, _ in sends.get(p, ()):
            if outcome == SUBMITTED and t <= at and at - t <= ATTRIBUTION_WINDOW_MS and t > best_t:
                best_t, best_c = t, c
        return best_c

    def unsub(
        phase: int,
        phone: str,
        contact,
        p: int,
        at: int,
        action: str,
        channel: str,
        campaign: int | None,
        text: str | None = None,
        dup_p: float = 0.0,
    ) -> None:
        """Publish one opt-out/opt-in and apply it to the expected blacklist and counts."""
        nonlocal n_uns
        n_uns += 1
        value = {
            "event_id": f"{pfx}uns-{n_uns}",
            "phone": phone,
            "contact_id": contact,
            "campaign_id": cids[campaign] if campaign is not None else None,
            "action": action,
            "channel": channel,
            "text": text,
            "at": at,
        }
        copies = 2 if rnd() < dup_p else 1
        for n in range(copies):
            v = value if n == 0 else dict(value)
            if phase == 1:
                put(at, TOPIC_UNSUBSCRIBES, phone, R_UNSUB, v)
            else:
                phase2_items.append((at, len(phase2_items), _emit(TOPIC_UNSUBSCRIBES, phone, R_UNSUB, v)))
        traffic["unsubscribe_duplicates"] += copies - 1
        e164 = normalize(phone)
        if action == "RESUBSCRIBE":
            resubscribed[e164] = max(at, resubscribed.get(e164, at))
            blacklisted.discard(e164)
            traffic["resubscribes"] += 1
            return
        attributed = campaign
        if attributed is None and channel == "STOP_KEYWORD":
            attributed = attribute(p, at) if p >= 0 else None
            if attributed is None:
                traffic["stop_replies_unattributed"] += 1
        if attributed is not None:
            unsub_phones[attributed].add(e164)
        if e164 in blacklisted:
            traffic["repeated_unsubscribes_while_blacklisted"] += 1
        else:
            blacklisted.add(e164)
            removals.add(("BLACKLISTED", e164, value["event_id"]))

    def written(p: int, national_p: float) -> str:
        e = pe164[p]
        if pcountry[p] == "FR" and rnd() < national_p:
            return _national(e, int(rnd() * 3))
        return e

    def stop(p: int, phone: str, contact, at: int, dup_p: float = 0.1) -> None:
        traffic["stop_replies"] += 1
        unsub(2, phone, contact, p, at, "UNSUBSCRIBE", "STOP_KEYWORD", None, pick(V.STOP_TEXTS), dup_p)

    def maybe_resubscribe(p: int, phone: str, contact, last_at: int) -> None:
        """Phase 2 tail: sometimes opt back in (MANUAL), and sometimes out again."""
        if rnd() < 0.25:
            at = last_at + 5 * MINUTE + int(rnd() * 55 * MINUTE)
            unsub(2, phone, contact, p, at, "RESUBSCRIBE", "MANUAL", None, None, 0.0)
            if rnd() < 0.5:
                traffic["unsubscribes_after_resubscribe"] += 1
                stop(p, phone, contact, at + MINUTE + int(rnd() * 59 * MINUTE), 0.0)

    order = [p for p in range(P) if tracked[p]]
    rng.shuffle(order)
    for p in order:
        contact = f"ct-{seed}-{p}" if rnd() < 0.7 else None
        mine = sends.get(p, [])
        subm = sorted((t, c) for t, c, o, _ in mine if o == SUBMITTED)
        if not mine:
            if rnd() < 0.3:  # never received anything: a STOP attributed to nobody
                traffic["stop_from_never_messaged_phone"] += 1
                at = base + int(rnd() * AUTOMATED_SPAN_MS)
                stop(p, written(p, 0.1), contact, at)
            continue
        times = [t for t, _ in subm]
        if len(set(times)) != len(times):
            continue  # two SUBMITTED sends at the same ms: attribution would be ambiguous
        last_sent = max(t for t, _, _, _ in mine)
        r = rnd()
        if not subm:
            if r < 0.5:  # only NOT_SENT / PROVIDER_ERROR messages: nothing to attribute to
                phone = written(p, 0.1)
                at = last_sent + MINUTE + int(rnd() * 2 * HOUR)
                stop(p, phone, contact, at)
                maybe_resubscribe(p, phone, contact, at)
            continue
        if r < 0.35 or r > 0.97:  # link click (or complaint) in phase 1, with campaign_id
            t, c = pick(subm)
            at = t + MINUTE + int(rnd() * 89 * MINUTE)
            if r < 0.35:
                traffic["link_unsubscribes"] += 1
                unsub(1, written(p, 0.2), contact, p, at, "UNSUBSCRIBE", "LINK", c, None, 0.15)
            else:
                traffic["complaint_unsubscribes"] += 1
                unsub(
                    1,
                    written(p, 0.2),
                    contact,
                    p,
                    at,
                    "UNSUBSCRIBE",
                    "COMPLAINT",
                    c,
                    "Je n'ai jamais demandé ces SMS",
                    0.0,
                )
            phone = written(p, 0.1)
            if rnd() < 0.35:  # a STOP later on: no new removal, maybe another campaign counts it
                at = max(at, last_sent) + 10 * MINUTE + int(rnd() * 3 * HOUR)
                stop(p, phone, contact, at)
            maybe_resubscribe(p, phone, contact, at)
        elif r < 0.80:
            phone = written(p, 0.1)
            v = rnd()
            gaps = [k for k in range(len(times) - 1) if times[k + 1] - times[k] > 2]
            if v < 0.7 or (v < 0.9 and not gaps):
                at = times[-1] + MINUTE + int(rnd() * 3 * HOUR)
            elif v < 0.9:  # between two sends: the earlier one is the latest before `at`
                k = pick(gaps)
                at = times[k] + 1 + int(rnd() * (times[k + 1] - times[k] - 1))
            else:  # before any SUBMITTED send: attributed to nobody
                at = times[0] - MINUTE - int(rnd() * 29 * MINUTE)
            stop(p, phone, contact, at)
            if rnd() < 0.15:  # says it twice
                at += MINUTE + int(rnd() * 59 * MINUTE)
                stop(p, phone, contact, at, 0.0)
            maybe_resubscribe(p, phone, contact, at)

    # STOP from numbers nobody ever messaged (at least two per scenario)
    for _ in range(2):
        e, _country = new_number()
        traffic["stop_from_never_messaged_phone"] += 1
        at = base + int(rnd() * AUTOMATED_SPAN_MS)
        stop(-1, e, None, at)

    # ---------------------------------------------------------------- assemble
    order = sorted(range(len(emits)), key=pubs.__getitem__)  # stable: ties keep creation order
    phase1 = list(map(emits.__getitem__, order))
    del emits, pubs, order
    phase2_items.sort(key=lambda item: (item[0], item[1]))
    phase2 = [e for _, _, e in phase2_items]

    stats: dict[str, dict] = {}
    for k in range(C):
        stats[cids[k]] = {
            "sent": st_sent[k],
            "not_sent": st_not_sent[k],
            "not_sent_by_reason": dict(sorted(st_reasons[k].items())),
            "status_counts": dict(sorted(st_status[k].items())),
            "unsubscribed": len(unsub_phones[k]),
            "credits": st_credits[k],
            "delivery_seconds": dict(sorted(st_delivery[k].items())),
            "by_provider": {p: dict(sorted(v.items())) for p, v in sorted(st_provider[k].items())},
            "by_operator": {o: dict(sorted(v.items())) for o, v in sorted(st_operator[k].items())},
            "name": names[k],
            "kind": kinds[k],
            "launch_list_size": counts[k] if kinds[k] == "BATCH" else 0,
        }
    suppressed: dict[str, tuple[str, ...]] = {}
    for e164 in set(hard_bounced) | blacklisted:
        bounced = any(at > resubscribed.get(e164, at - 1) for at in hard_bounced.get(e164, ()))
        suppressed[e164] = ("PERMANENT_ERROR",) * bounced + ("BLACKLISTED",) * (e164 in blacklisted)
    suppressed = {k: v for k, v in suppressed.items() if v}
    expected = Expected(
        stats=stats, removals=removals, message_status=message_status, blacklisted=blacklisted, suppressed=suppressed
    )
    params = {"seed": seed, "messages": messages, "campaigns": campaigns, "base_time_ms": base}
    return Scenario(phase1=phase1, phase2=phase2, expected=expected, traffic=traffic, params=params)


# -------------------------------------------------------------------- summary
_STATUS_ORDER = (
    "DELIVERED",
    "PROVIDER_ACCEPTED",
    "PENDING",
    "SOFT_BOUNCE",
    "PROVIDER_ERROR",
    "HARD_BOUNCE",
    "UNKNOWN",
    "NOT_SENT",
)
_STATUS_SHORT = {
    "DELIVERED": "deliv",
    "PROVIDER_ACCEPTED": "acc",
    "PENDING": "pend",
    "SOFT_BOUNCE": "soft",
    "PROVIDER_ERROR": "p.err",
    "HARD_BOUNCE": "hard",
    "UNKNOWN": "unkn",
    "NOT_SENT": "n.sent",
}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(sc: Scenario) -> str:
    p = sc.params
    ex = sc.expected
    lines = []
    if p:
        lines.append(
            f"Simulated campaign day: seed {p['seed']}, {p['messages']} messages, "
            f"{p['campaigns']} campaigns, from {_iso(p['base_time_ms'])}"
        )
    by_topic: dict[str, int] = {}
    for e in sc.phase1:
        by_topic[e.topic] = by_topic.get(e.topic, 0) + 1
    lines.append(f"Phase 1: {len(sc.phase1)} records: " + ", ".join(f"{t} {n}" for t, n in sorted(by_topic.items())))
    actions: dict[str, int] = {}
    for e in sc.phase2:
        k = f"{e.value['action']}/{e.value['channel']}"
        actions[k] = actions.get(k, 0) + 1
    lines.append(
        f"Phase 2: {len(sc.phase2)} records on {TOPIC_UNSUBSCRIBES}: "
        + ", ".join(f"{k} {n}" for k, n in sorted(actions.items()))
    )
    if sc.traffic:
        t = sc.traffic
        lines.append("Messiness: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t.items() if v))
    lines.append("")
    header = (
        f"{'campaign':<12} {'kind':<9} {'sent':>7} {'n.sent':>6} "
        + " ".join(f"{_STATUS_SHORT[s]:>6}" for s in _STATUS_ORDER)
        + f" {'unsub':>5} {'credits':>10}  name"
    )
    lines.append(header)
    tot = {"sent": 0, "not_sent": 0, "unsubscribed": 0, "credits": 0.0}
    tot_status: dict[str, int] = {}
    for cid, s in ex.stats.items():
        for k in tot:
            tot[k] += s[k]
        for k, v in s["status_counts"].items():
            tot_status[k] = tot_status.get(k, 0) + v
        lines.append(
            f"{cid:<12} {s['kind']:<9} {s['sent']:>7} {s['not_sent']:>6} "
            + " ".join(f"{s['status_counts'].get(st, 0):>6}" for st in _STATUS_ORDER)
            + f" {s['unsubscribed']:>5} {s['credits']:>10.2f}  {s['name']}"
        )
        if s["not_sent_by_reason"]:
            lines.append(
                f"{'':<12} not sent by reason: " + ", ".join(f"{k} {v}" for k, v in s["not_sent_by_reason"].items())
            )
    lines.append(
        f"{'total':<12} {'':<9} {tot['sent']:>7} {tot['not_sent']:>6} "
        + " ".join(f"{tot_status.get(st, 0):>6}" for st in _STATUS_ORDER)
        + f" {tot['unsubscribed']:>5} {tot['credits']:>10.2f}"
    )
    lines.append("")
    by_reason: dict[str, int] = {}
    for r in ex.removals:
        by_reason[r[0]] = by_reason.get(r[0], 0) + 1
    lines.append(
        "Address-book removals: "
        + (", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) or "none")
        + f"; blacklisted at the end: {len(ex.blacklisted)} phones"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """python -m simulator.scenario [--seed N] [--messages N] [--campaigns N]: print the summary."""
    import argparse
    import time

    ap = argparse.ArgumentParser(prog="python -m simulator.scenario", description=main.__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--campaigns", type=int, default=5)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sc = generate(args.seed, args.messages, args.campaigns)
    dt = time.perf_counter() - t0
    print(sc.summary())
    print(f"\nGenerated in {dt:.2f} s ({args.messages / dt if dt else 0:,.0f} messages/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
