"""A slow, literal reading of the contract (sections 3-7), applied to published records.

``fold(phase1, phase2)`` recomputes what the generator expects, from the records alone:
no knowledge of what the generator meant, no code shared with processors/. The tests
use it to check the generator's bookkeeping; it is also a handy oracle for small
hand-made scenarios. It is single-threaded and keeps everything in memory: fine for
tens of thousands of messages, not meant for a million.
"""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers

from .scenario import (
    ATTRIBUTION_WINDOW_MS,
    TOPIC_CAMPAIGNS,
    TOPIC_DLR,
    TOPIC_MESSAGE_SENT,
    TOPIC_UNSUBSCRIBES,
    Emit,
    Expected,
)

# Contract §4, raw table. FAILURE: decided by the error code.
_FAILURE = "FAILURE"
_VOCABULARIES = {
    "smpp": {
        "ENROUTE": "PENDING",
        "ACCEPTD": "PENDING",
        "SCHEDULED": "PENDING",
        "BUFFRED": "PENDING",
        "DELIVRD": "DELIVERED",
        "EXPIRED": "SOFT_BOUNCE",
        "UNDELIV": _FAILURE,
        "REJECTD": _FAILURE,
        "DELETED": _FAILURE,
        "FAILED": _FAILURE,
        "UNKNOWN": "UNKNOWN",
    },
    "twilio": {
        "QUEUED": "PENDING",
        "ACCEPTED": "PENDING",
        "SCHEDULED": "PENDING",
        "SENDING": "PENDING",
        "SENT": "PENDING",
        "DELIVERED": "DELIVERED",
        "READ": "DELIVERED",
        "UNDELIVERED": _FAILURE,
        "FAILED": _FAILURE,
    },
    "vonage": {
        "ACCEPTED": "PENDING",
        "BUFFERED": "PENDING",
        "DELIVERED": "DELIVERED",
        "EXPIRED": "SOFT_BOUNCE",
        "FAILED": _FAILURE,
        "REJECTED": _FAILURE,
        "UNKNOWN": "UNKNOWN",
    },
    "infobip": {
        "PENDING": "PENDING",
        "DELIVERED": "DELIVERED",
        "EXPIRED": "SOFT_BOUNCE",
        "UNDELIVERABLE": _FAILURE,
        "REJECTED": _FAILURE,
    },
}
_CANONICAL = (
    "PENDING",
    "PROVIDER_ACCEPTED",
    "DELIVERED",
    "SOFT_BOUNCE",
    "PROVIDER_ERROR",
    "HARD_BOUNCE",
    "UNKNOWN",
    "NOT_SENT",
)
_PERMANENT = {"twilio": {30005, 30006}, "vonage": {3, 4}, "smsmode": set(range(3520, 3530))}
_GSM_PERMANENT = {1, 9, 11, 12}
_PRECEDENCE = {
    "HARD_BOUNCE": 6,
    "DELIVERED": 5,
    "SOFT_BOUNCE": 4,
    "UNKNOWN": 3,
    "PROVIDER_ACCEPTED": 2,
    "PROVIDER_ERROR": 1,
}


def map_status(provider: str | None, raw: str, code: str | None) -> str:
    """Raw receipt -> canonical status. A provider without a vocabulary of its own (smsmode,
    missing, other) is read with any vocabulary that knows the word."""
    word = raw.strip().upper()
    prov = (provider or "").lower()
    canon = _VOCABULARIES.get(prov, {}).get(word)
    if canon is None:
        for vocab in _VOCABULARIES.values():
            if word in vocab:
                canon = vocab[word]
                break
    if canon is None:
        canon = word if word in _CANONICAL else "UNKNOWN"
    if canon != _FAILURE:
        return canon
    num = int(code) if code is not None and code.isdigit() else None
    permanent = _PERMANENT.get(prov, _GSM_PERMANENT)
    return "HARD_BOUNCE" if num is not None and num in permanent else "SOFT_BOUNCE"


def normalize(phone: str, region: str = "FR") -> str:
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def stop_campaign(sends: Iterable[tuple[int, str]], at: int) -> str | None:
    """Contract §6: a STOP without campaign_id goes to the campaign of the phone's latest
    SUBMITTED send (``(sent_at, campaign_id)`` pairs) at or before it, within the window."""
    cands = [(t, c) for t, c in sends if t <= at and at - t <= ATTRIBUTION_WINDOW_MS]
    return max(cands)[1] if cands else None


def fold(phase1: Iterable[Emit], phase2: Iterable[Emit] = ()) -> Expected:
    campaigns: dict[str, dict] = {}
    sent: dict[str, dict] = {}  # message_id -> first MessageSent value
    receipts: dict[str, dict[str, dict]] = {}  # message_id -> event_id -> receipt
    unsubs: list[dict] = []
    for phase in (phase1, phase2):
        for e in phase:
            v = e.value
            if e.topic == TOPIC_CAMPAIGNS:
                campaigns[v["campaign_id"]] = v  # the last one published wins
            elif e.topic == TOPIC_MESSAGE_SENT:
                sent.setdefault(v["message_id"], v)
            elif e.topic == TOPIC_DLR:
                receipts.setdefault(v["message_id"], {}).setdefault(v["event_id"], v)
            elif e.topic == TOPIC_UNSUBSCRIBES:
                unsubs.append(v)

    stats: dict[str, dict] = {}
    # Contract §11, read literally: "le_N" up to N seconds, then gt_259200.
    _DELIVERY_BOUNDS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200)

    def camp(cid: str) -> dict:
        if cid not in stats:
            c = campaigns.get(cid, {})
            stats[cid] = {
                "sent": 0,
                "not_sent": 0,
                "not_sent_by_reason": {},
                "status_counts": {},
                "unsubscribed": set(),
                "credits": 0.0,
                "delivery_seconds": {},
                "by_provider": {},
                "by_operator": {},
                "name": c.get("name"),
                "kind": c.get("kind"),
                "launch_list_size": c.get("launch_list_size"),
            }
        return stats[cid]

    for cid in campaigns:
        camp(cid)
    message_status: dict[str, str] = {}
    removals: set[tuple] = set()
    hard_at: dict[str, list[int]] = {}  # §11: phone -> carrier times of its HARD_BOUNCE messages
    submitted_by_phone: dict[str, list[tuple[int, str]]] = {}
    for mid, m in sent.items():
        s = camp(m["campaign_id"])
        outcome = m["outcome"]
        if outcome == "NOT_SENT":
            status = "NOT_SENT"
            s["not_sent"] += 1
            reason = m["not_sent_reason"] or "OTHER"
            s["not_sent_by_reason"][reason] = s["not_sent_by_reason"].get(reason, 0) + 1
        else:
            s["sent"] += 1
            s["credits"] += m["credits"]
            best = (
                (m["sent_at"], _PRECEDENCE["PROVIDER_ERROR"], "PROVIDER_ERROR") if outcome == "PROVIDER_ERROR" else None
            )
            for r in receipts.get(mid, {}).values():
                st = map_status(r["provider"], r["status"], r["error_code"])
                if st == "PENDING":
                    continue  # a non-final status never replaces a final one
                t = r["done_at"] if r["done_at"] is not None else r["received_at"]
                cand = (t, _PRECEDENCE[st], st)
                if best is None or cand > best:
                    best = cand
            status = best[2] if best else "PENDING"
            if best is not None and status == "DELIVERED":  # §11: the winning receipt's time
                seconds = (best[0] - m["sent_at"]) / 1000
                bucket = next((f"le_{b}" for b in _DELIVERY_BOUNDS if seconds <= b), "gt_259200")
                s["delivery_seconds"][bucket] = s["delivery_seconds"].get(bucket, 0) + 1
            for field, key in (("by_provider", m.get("provider")), ("by_operator", m.get("operator"))):
                counts = s[field].setdefault(key or "unknown", {})
                counts[status] = counts.get(status, 0) + 1
            if outcome == "SUBMITTED":
                submitted_by_phone.setdefault(normalize(m["phone"]), []).append((m["sent_at"], m["campaign_id"]))
        message_status[mid] = status
        s["status_counts"][status] = s["status_counts"].get(status, 0) + 1
        if status == "HARD_BOUNCE":
            removals.add(("PERMANENT_ERROR", normalize(m["phone"]), mid))
            assert best is not None
            hard_at.setdefault(normalize(m["phone"]), []).append(best[0])

    blacklisted: set[str] = set()
    resub_at: dict[str, int] = {}
    seen: set[str] = set()
    for u in unsubs:  # already in per-phone `at` order: phase 1, then phase 2
        if u["event_id"] in seen:
            continue
        seen.add(u["event_id"])
        phone = normalize(u["phone"])
        if u["action"] == "RESUBSCRIBE":
            blacklisted.discard(phone)
            resub_at[phone] = max(resub_at.get(phone, u["at"]), u["at"])
            continue
        cid = u["campaign_id"]
        if cid is None and u["channel"] == "STOP_KEYWORD":
            cid = stop_campaign(submitted_by_phone.get(phone, ()), u["at"])
        if cid is not None:
            camp(cid)["unsubscribed"].add(phone)
        if phone not in blacklisted:
            blacklisted.add(phone)
            removals.add(("BLACKLISTED", phone, u["event_id"]))

    for s in stats.values():
        s["unsubscribed"] = len(s["unsubscribed"])
        s["not_sent_by_reason"] = dict(sorted(s["not_sent_by_reason"].items()))
        s["status_counts"] = dict(sorted(s["status_counts"].items()))
        s["delivery_seconds"] = dict(sorted(s["delivery_seconds"].items()))
        for field in ("by_provider", "by_operator"):
            s[field] = {k: dict(sorted(v.items())) for k, v in sorted(s[field].items())}
    # §11: a hard bounce is in force if later than the phone's latest resubscribe
    suppressed = {}
    for phone in sorted(set(hard_at) | blacklisted):
        reasons = []
        if any(phone not in resub_at or t > resub_at[phone] for t in hard_at.get(phone, [])):
            reasons.append("PERMANENT_ERROR")
        if phone in blacklisted:
            reasons.append("BLACKLISTED")
        if reasons:
            suppressed[phone] = tuple(reasons)
    return Expected(
        stats=stats, removals=removals, message_status=message_status, blacklisted=blacklisted, suppressed=suppressed
    )
