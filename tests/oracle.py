"""An independent reference model of contract §4–§7, written from the contract's tables.

It shares no code with ``processors`` (no fold, no mapper, no counters): it recomputes the
expected results from the *set* of generated records with the simplest possible rules, so
that a test comparing it with the topology checks the implementation, not itself.

Where the contract is silent, the model states the implementation's documented choice:
- a receipt status is looked up case-insensitively in the union of the listed vocabularies
  whatever the receipt's provider (they never conflict), then among canonical names; a
  receipt saying ``NOT_SENT`` means ``PROVIDER_ERROR`` (only a MessageSent makes NOT_SENT);
- the event-time watermark of rule 6 is per message partition (the latest event time folded
  there), partitions being where Kafka's default partitioner puts the message_id key
  (murmur2, here aiokafka's own implementation, not the project's);
- a STOP attribution tie (two sends to the phone at the same sent_at) goes to the greatest
  (campaign_id, message_id).
"""

from __future__ import annotations

from collections import defaultdict

from aiokafka.partitioner import murmur2
from strategies import PHONE_OF, World

HOUR = 3_600_000
TIMEOUT = 72 * HOUR
WINDOW = 72 * HOUR

PENDING, PROVIDER_ACCEPTED, DELIVERED = "PENDING", "PROVIDER_ACCEPTED", "DELIVERED"
SOFT_BOUNCE, PROVIDER_ERROR, HARD_BOUNCE = "SOFT_BOUNCE", "PROVIDER_ERROR", "HARD_BOUNCE"
UNKNOWN, NOT_SENT = "UNKNOWN", "NOT_SENT"
CANONICAL = [PENDING, PROVIDER_ACCEPTED, DELIVERED, SOFT_BOUNCE, PROVIDER_ERROR, HARD_BOUNCE, UNKNOWN, NOT_SENT]
FAILURE = "by error code"

# Contract §4, first table, one row at a time.
TABLE: dict[str, dict[str, str]] = {
    "smpp": {
        "ENROUTE": PENDING,
        "ACCEPTD": PENDING,
        "SCHEDULED": PENDING,
        "BUFFRED": PENDING,
        "DELIVRD": DELIVERED,
        "EXPIRED": SOFT_BOUNCE,
        "UNDELIV": FAILURE,
        "REJECTD": FAILURE,
        "DELETED": FAILURE,
        "FAILED": FAILURE,
        "UNKNOWN": UNKNOWN,
    },
    "twilio": {
        "queued": PENDING,
        "accepted": PENDING,
        "scheduled": PENDING,
        "sending": PENDING,
        "sent": PENDING,
        "delivered": DELIVERED,
        "read": DELIVERED,
        "undelivered": FAILURE,
        "failed": FAILURE,
    },
    "vonage": {
        "accepted": PENDING,
        "buffered": PENDING,
        "delivered": DELIVERED,
        "expired": SOFT_BOUNCE,
        "failed": FAILURE,
        "rejected": FAILURE,
        "unknown": UNKNOWN,
    },
    "infobip": {
        "PENDING": PENDING,
        "DELIVERED": DELIVERED,
        "EXPIRED": SOFT_BOUNCE,
        "UNDELIVERABLE": FAILURE,
        "REJECTED": FAILURE,
    },
}
# Contract §4, second table.
PERMANENT: dict[str, set[int]] = {
    "smpp": {1, 9, 11, 12},
    "twilio": {30005, 30006},
    "vonage": {3, 4},
    "smsmode": set(range(3520, 3530)),
}
DEFAULT_PERMANENT = {1, 9, 11, 12}
# Contract §5 rule 3: the tie precedence, highest first.
PRECEDENCE = [HARD_BOUNCE, DELIVERED, SOFT_BOUNCE, UNKNOWN, PROVIDER_ACCEPTED, PROVIDER_ERROR]
RANK = {s: len(PRECEDENCE) - i for i, s in enumerate(PRECEDENCE)}
# Contract §6: rate numerators.
RATES = {
    "receipt": [DELIVERED, PROVIDER_ACCEPTED],
    "delivery": [DELIVERED],
    "waiting": [PENDING],
    "temporary_error": [SOFT_BOUNCE, PROVIDER_ERROR],
    "permanent_error": [HARD_BOUNCE],
    "unknown": [UNKNOWN],
}
SUMMARY = ("name", "kind", "text", "sender_id", "sms_type", "created_at", "launched_at", "launch_list_size")


def decimal_code(raw: str | None) -> int | None:
    if raw is None:
        return None
    t = raw.strip()
    digits = t[1:] if t[:1] in ("+", "-") else t
    if digits and all(c in "0123456789" for c in digits):
        return int(t)
    return None


def canonical(provider: str | None, raw: str, code: str | None) -> str:
    word = raw.strip().lower()
    found = None
    for vocab in TABLE.values():
        for k, v in vocab.items():
            if k.lower() == word:
                assert found in (None, v), "the contract's vocabularies never conflict"
                found = v
    if found is None:
        for name in CANONICAL:
            if name.lower() == word:
                found = PROVIDER_ERROR if name == NOT_SENT else name
    if found is None:
        return UNKNOWN
    if found != FAILURE:
        return found
    n = decimal_code(code)
    codes = PERMANENT.get((provider or "").lower(), DEFAULT_PERMANENT)
    return HARD_BOUNCE if n is not None and n in codes else SOFT_BOUNCE


def carrier_time(r: dict) -> int:
    return r["done_at"] if r.get("done_at") is not None else r["received_at"]


def final_candidates(send: dict, receipts: list[dict]) -> list[tuple[int, int, str]]:
    out = []
    for r in receipts:
        s = canonical(r.get("provider"), r["status"], r.get("error_code"))
        if s != PENDING:
            out.append((carrier_time(r), RANK[s], s))
    if send["outcome"] == "PROVIDER_ERROR":
        out.append((send["sent_at"], RANK[PROVIDER_ERROR], PROVIDER_ERROR))
    return out


def message_status(send: dict, receipts: list[dict], watermark: int, timeout: int = TIMEOUT) -> str:
    if send["outcome"] == "NOT_SENT":
        return NOT_SENT
    finals = final_candidates(send, receipts)
    if finals:
        return max(finals)[2]
    return UNKNOWN if watermark >= send["sent_at"] + timeout else PENDING


def partition_of(key: str, n: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % n


def _by_message(world: World) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    sends = {s["message_id"]: s for s in world.sends}
    receipts: dict[str, list[dict]] = defaultdict(list)
    for r in world.receipts:
        receipts[r["message_id"]].append(r)
    return sends, receipts


def watermarks(world: World, partitions: int) -> dict[int, int]:
    wm: dict[int, int] = defaultdict(int)
    for s in world.sends:
        p = partition_of(s["message_id"], partitions)
        wm[p] = max(wm[p], s["sent_at"])
    for r in world.receipts:
        p = partition_of(r["message_id"], partitions)
        wm[p] = max(wm[p], r["received_at"])
    return wm


def statuses(world: World, partitions: int, timeout: int = TIMEOUT) -> dict[str, str]:
    sends, receipts = _by_message(world)
    wm = watermarks(world, partitions)
    return {
        mid: message_status(s, receipts[mid], wm[partition_of(mid, partitions)], timeout) for mid, s in sends.items()
    }


def attributions(world: World, window: int = WINDOW) -> list[tuple[dict, str | None]]:
    """Each UNSUBSCRIBE with the campaign it is attributed to (all sends known first)."""
    submitted: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for s in world.sends:
        if s["outcome"] == "SUBMITTED":
            submitted[PHONE_OF[s["phone"]]].append((s["sent_at"], s["campaign_id"], s["message_id"]))
    out = []
    for u in world.unsubscribes:
        if u["action"] != "UNSUBSCRIBE":
            continue
        if u.get("campaign_id"):
            out.append((u, u["campaign_id"]))
        elif u["channel"] == "STOP_KEYWORD":
            cands = [x for x in submitted[PHONE_OF[u["phone"]]] if u["at"] - window <= x[0] <= u["at"]]
            out.append((u, max(cands)[1] if cands else None))
        else:
            out.append((u, None))
    return out


#: Contract §11, written out: the buckets' upper bounds in seconds (then "gt_259200").
DELIVERY = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200)


def delivery_bucket(seconds: float) -> str:
    for bound in DELIVERY:
        if seconds <= bound:
            return f"le_{bound}"
    return "gt_259200"


def breakdown(pairs: list[tuple[str, str]], limit: int = 50) -> dict[str, dict[str, int]]:
    """(key, status) per sent message -> the §11 map: the ``limit`` keys with the most
    messages (ties: the smaller key), the rest (and any key called other) under "other"."""
    full: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, status in pairs:
        full[key][status] += 1
    ranked = sorted((k for k in full if k != "other"), key=lambda k: (-sum(full[k].values()), k))
    kept = ranked[:limit] if (len(full) > limit or "other" in full) else ranked
    out = {k: dict(full[k]) for k in kept}
    rest: dict[str, int] = defaultdict(int)
    for k, by in full.items():
        if k not in out:
            for status, n in by.items():
                rest[status] += n
    if rest:
        out["other"] = dict(rest)
    return out


def expected_stats(world: World, partitions: int, timeout: int = TIMEOUT) -> dict[str, dict]:
    sends, receipts = _by_message(world)
    status = statuses(world, partitions, timeout)
    launches = {launch["campaign_id"]: launch for launch in world.launches}
    attributed = [(u, c) for u, c in attributions(world) if c is not None]
    cids = set(launches) | {s["campaign_id"] for s in world.sends} | {c for _, c in attributed}
    out = {}
    for cid in sorted(cids):
        mine = [s for s in world.sends if s["campaign_id"] == cid]
        sent = [s for s in mine if s["outcome"] != "NOT_SENT"]
        not_sent = [s for s in mine if s["outcome"] == "NOT_SENT"]
        sc: dict[str, int] = defaultdict(int)
        for s in mine:
            sc[status[s["message_id"]]] += 1
        nsr: dict[str, int] = defaultdict(int)
        for s in not_sent:
            nsr[s.get("not_sent_reason") or "OTHER"] += 1
        unsub_phones = {PHONE_OF[u["phone"]] for u, c in attributed if c == cid}
        times = [max([s["sent_at"]] + [r["received_at"] for r in receipts[s["message_id"]]]) for s in mine]
        times += [u["at"] for u, c in attributed if c == cid]
        n = len(sent)
        rates = {name: (sum(sc.get(x, 0) for x in nums) / n if n else 0.0) for name, nums in RATES.items()}
        rates["unsubscribe"] = len(unsub_phones) / n if n else 0.0
        delivery: dict[str, int] = defaultdict(int)
        for s in sent:
            if status[s["message_id"]] == DELIVERED:
                won = max(final_candidates(s, receipts[s["message_id"]]))
                delivery[delivery_bucket((won[0] - s["sent_at"]) / 1000)] += 1
        launch = launches.get(cid, {})
        rec = {"campaign_id": cid, **{k: launch.get(k) for k in SUMMARY}}
        rec.update(
            {
                "sent": n,
                "not_sent": len(not_sent),
                "not_sent_by_reason": dict(nsr),
                "status_counts": dict(sc),
                "unsubscribed": len(unsub_phones),
                "credits": sum(s["credits"] for s in sent),
                "rates": rates,
                "first_sent_at": min((s["sent_at"] for s in sent), default=None),
                "last_event_at": max(times, default=None),
                "delivery_seconds": dict(delivery),
                "by_provider": breakdown([(s.get("provider") or "unknown", status[s["message_id"]]) for s in sent]),
                "by_operator": breakdown([(s.get("operator") or "unknown", status[s["message_id"]]) for s in sent]),
            }
        )
        out[cid] = rec
    return out


def final_blacklist(world: World) -> dict[str, bool]:
    latest: dict[str, tuple[int, str, str]] = {}
    for u in world.unsubscribes:
        phone = PHONE_OF[u["phone"]]
        mark = (u["at"], u["event_id"], u["action"])
        if phone not in latest or mark > latest[phone]:
            latest[phone] = mark
    return {phone: m[2] == "UNSUBSCRIBE" for phone, m in latest.items()}


def blacklisting_in_time_order(world: World) -> set[str]:
    """The unsubscribes that blacklist their phone when all are processed in (at, event_id) order."""
    listed: dict[str, bool] = defaultdict(bool)
    out = set()
    for u in sorted(world.unsubscribes, key=lambda u: (u["at"], u["event_id"])):
        phone = PHONE_OF[u["phone"]]
        if u["action"] == "UNSUBSCRIBE":
            if not listed[phone]:
                out.add(u["event_id"])
            listed[phone] = True
        else:
            listed[phone] = False
    return out


def hard_bounce_bounds(world: World, partitions: int) -> tuple[set[str], set[str]]:
    """(must, may): messages that must get a PERMANENT_ERROR removal whatever the order (their
    final status is HARD_BOUNCE), and those that may get one in some order (a HARD_BOUNCE
    receipt that beats the send's own status but is later superseded by another receipt)."""
    sends, receipts = _by_message(world)
    status = statuses(world, partitions)
    must = {mid for mid, s in status.items() if s == HARD_BOUNCE}
    may = set(must)
    for mid, send in sends.items():
        if send["outcome"] == "NOT_SENT":
            continue
        own = (send["sent_at"], RANK[PROVIDER_ERROR]) if send["outcome"] == "PROVIDER_ERROR" else None
        for r in receipts[mid]:
            if canonical(r.get("provider"), r["status"], r.get("error_code")) == HARD_BOUNCE:
                if own is None or (carrier_time(r), RANK[HARD_BOUNCE]) > own:
                    may.add(mid)
    return must, may


def final_suppressions(world: World, partitions: int) -> dict[str, dict]:
    """Contract §11: what is in force per phone, for the phones where anything is.

    BLACKLISTED while the latest action is an UNSUBSCRIBE; PERMANENT_ERROR while a message
    to the phone is HARD_BOUNCE with a carrier time later than its latest RESUBSCRIBE. The
    project's documented choices: ``blacklisted_at`` is the first UNSUBSCRIBE after that
    RESUBSCRIBE, ``permanent_error_at`` the earliest hard bounce in force, and the latest
    cause the one in force with the latest (time, id)."""
    sends, receipts = _by_message(world)
    status = statuses(world, partitions)
    resub: dict[str, tuple[int, str]] = {}
    for u in world.unsubscribes:
        phone, mark = PHONE_OF[u["phone"]], (u["at"], u["event_id"])
        if u["action"] == "RESUBSCRIBE" and (phone not in resub or mark > resub[phone]):
            resub[phone] = mark
    causes: dict[str, list[tuple]] = defaultdict(list)  # (time, id, contact, campaign, message, reason)
    for u in world.unsubscribes:
        phone, mark = PHONE_OF[u["phone"]], (u["at"], u["event_id"])
        if u["action"] == "UNSUBSCRIBE" and (phone not in resub or mark > resub[phone]):
            causes[phone].append((*mark, u.get("contact_id"), u.get("campaign_id"), None, "BLACKLISTED"))
    for mid, send in sends.items():
        if status[mid] != HARD_BOUNCE:
            continue
        phone, at = PHONE_OF[send["phone"]], max(final_candidates(send, receipts[mid]))[0]
        if phone not in resub or at > resub[phone][0]:
            causes[phone].append((at, mid, send.get("contact_id"), send["campaign_id"], mid, "PERMANENT_ERROR"))
    out = {}
    for phone, cs in causes.items():
        reasons = [r for r in ("PERMANENT_ERROR", "BLACKLISTED") if any(c[5] == r for c in cs)]
        latest = max(cs, key=lambda c: c[:2])
        out[phone] = {
            "phone": phone,
            "suppressed": True,
            "reasons": reasons,
            "blacklisted_at": min((c[0] for c in cs if c[5] == "BLACKLISTED"), default=None),
            "permanent_error_at": min((c[0] for c in cs if c[5] == "PERMANENT_ERROR"), default=None),
            "contact_id": latest[2],
            "campaign_id": latest[3],
            "message_id": latest[4],
        }
    return out
