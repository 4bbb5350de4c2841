"""The traffic simulator: deterministic, schema-valid, messy, and right about what it expects."""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import phonenumbers
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import reference
from simulator.scenario import (
    DEFAULT_BASE_MS,
    HOUR,
    TOPIC_CAMPAIGNS,
    TOPIC_DLR,
    TOPIC_MESSAGE_SENT,
    TOPIC_UNSUBSCRIBES,
    Emit,
    Scenario,
    generate,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
RECORD_OF_TOPIC = {
    TOPIC_CAMPAIGNS: "smstally.CampaignLaunched",
    TOPIC_MESSAGE_SENT: "smstally.MessageSent",
    TOPIC_DLR: "smstally.DeliveryReceipt",
    TOPIC_UNSUBSCRIBES: "smstally.Unsubscribe",
}
KEY_FIELD = {
    TOPIC_CAMPAIGNS: "campaign_id",
    TOPIC_MESSAGE_SENT: "message_id",
    TOPIC_DLR: "message_id",
    TOPIC_UNSUBSCRIBES: "phone",
}
FINAL = {"PROVIDER_ACCEPTED", "DELIVERED", "SOFT_BOUNCE", "PROVIDER_ERROR", "HARD_BOUNCE", "UNKNOWN"}


@pytest.fixture(scope="module")
def default() -> Scenario:
    return generate()


@pytest.fixture(scope="module")
def schemas() -> dict:
    out = {}
    for path in SCHEMAS.glob("*.avsc"):
        schema = fastavro.parse_schema(json.loads(path.read_text()))
        out[schema["name"]] = schema
    return out


def by_topic(emits: list[Emit], topic: str) -> list[dict]:
    return [e.value for e in emits if e.topic == topic]


def _millis(v):
    """fastavro reads timestamp-millis back as datetimes."""
    if isinstance(v, datetime):
        return (v - EPOCH) // timedelta(milliseconds=1)
    return v


def carrier(r: dict) -> int:
    return r["done_at"] if r["done_at"] is not None else r["received_at"]


# ------------------------------------------------------------------ determinism


def test_same_seed_same_traffic():
    a, b = generate(seed=7, messages=800), generate(seed=7, messages=800)
    assert a.phase1 == b.phase1
    assert a.phase2 == b.phase2
    assert a.expected == b.expected
    assert a.traffic == b.traffic
    assert a.summary() == b.summary()


def test_other_seed_other_traffic():
    a, b = generate(seed=7, messages=800), generate(seed=8, messages=800)
    assert [e.value for e in a.phase1] != [e.value for e in b.phase1]
    # ids carry the seed: two scenarios can share a broker without mixing campaigns
    assert not {e.value["event_id"] for e in a.phase1} & {e.value["event_id"] for e in b.phase1}


def test_default_base_time_is_fixed():
    sc = generate(messages=50)
    assert sc.params["base_time_ms"] == DEFAULT_BASE_MS == 1795420800000  # 2026-11-23T08:00Z
    shifted = generate(messages=50, base_time_ms=DEFAULT_BASE_MS + HOUR)
    assert [e.value.get("sent_at") for e in shifted.phase1 if e.topic == TOPIC_MESSAGE_SENT] == [
        e.value["sent_at"] + HOUR for e in sc.phase1 if e.topic == TOPIC_MESSAGE_SENT
    ]


# ------------------------------------------------------------------ records


def test_every_record_is_valid_for_its_schema(default, schemas):
    for e in default.phase1 + default.phase2:
        assert e.record_name == RECORD_OF_TOPIC[e.topic]
        schema = schemas[e.record_name]
        assert validate(e.value, schema, raise_errors=True)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, e.value)
        buf.seek(0)
        back = fastavro.schemaless_reader(buf, schema, schema)
        assert {k: _millis(v) for k, v in back.items()} == e.value


def test_keys_follow_the_contract(default):
    for e in default.phase1 + default.phase2:
        assert isinstance(e.key, str) and e.key
        assert e.key == e.value[KEY_FIELD[e.topic]]


def test_phase2_holds_only_unsubscribes(default):
    assert default.phase2
    for e in default.phase2:
        assert e.topic == TOPIC_UNSUBSCRIBES
        v = e.value
        assert v["campaign_id"] is None
        assert (v["action"], v["channel"]) in {("UNSUBSCRIBE", "STOP_KEYWORD"), ("RESUBSCRIBE", "MANUAL")}
        if v["channel"] == "STOP_KEYWORD":
            assert v["text"].strip().lower().startswith("stop")


def test_phones(default):
    sent = by_topic(default.phase1, TOPIC_MESSAGE_SENT)
    kinds = Counter()
    for m in sent:
        phone = m["phone"]
        try:
            parsed = phonenumbers.parse(phone, "FR")
        except phonenumbers.NumberParseException:
            kinds["unparseable"] += 1
            assert m["country"] is None
            continue
        assert phonenumbers.is_valid_number(parsed), phone
        assert phonenumbers.region_code_for_number(parsed) == m["country"]
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        kinds["e164" if e164 == phone else "national"] += 1
    assert kinds["unparseable"] and kinds["national"] and kinds["e164"] > kinds["national"]
    assert {m["country"] for m in sent} == {"FR", "BE", "ES", None}
    # the same person gets messages from several campaigns
    campaigns_of = defaultdict(set)
    for m in sent:
        campaigns_of[reference.normalize(m["phone"])].add(m["campaign_id"])
    assert sum(1 for cs in campaigns_of.values() if len(cs) > 1) > 50


def test_sends(default):
    sent = by_topic(default.phase1, TOPIC_MESSAGE_SENT)
    distinct = {m["message_id"]: m for m in sent}
    assert len(distinct) == 2000
    outcomes = Counter(m["outcome"] for m in distinct.values())
    assert outcomes["SUBMITTED"] > 0.9 * 2000 and outcomes["PROVIDER_ERROR"] and outcomes["NOT_SENT"]
    for m in distinct.values():
        assert 1 <= m["segments"] <= 3
        if m["outcome"] == "NOT_SENT":
            assert m["credits"] == 0 and m["provider"] is None
        else:
            assert m["credits"] == m["segments"] * 0.25
            assert m["provider"] in {"smpp", "twilio", "vonage", "infobip", "smsmode"}
    reasons = Counter(m["not_sent_reason"] for m in distinct.values() if m["outcome"] == "NOT_SENT")
    assert None in reasons and len(reasons) >= 5
    assert {m["provider"] for m in distinct.values()} >= {"smpp", "twilio", "vonage", "infobip", "smsmode"}


def test_campaigns(default):
    launches = by_topic(default.phase1, TOPIC_CAMPAIGNS)
    kinds = {v["campaign_id"]: v["kind"] for v in launches}
    assert set(kinds) == set(default.expected.stats) and len(kinds) == 5
    assert set(kinds.values()) == {"BATCH", "AUTOMATED"}
    per = Counter(v["campaign_id"] for v in launches)
    relaunched = [c for c, n in per.items() if n > 1]
    assert relaunched
    for cid in relaunched:
        names = [v["name"] for v in launches if v["campaign_id"] == cid]
        assert len(set(names)) == 2 and default.expected.stats[cid]["name"] == names[-1]
    # one launch record arrives after the first sends of its campaign
    seen_launch, late = set(), set()
    for e in default.phase1:
        if e.topic == TOPIC_CAMPAIGNS:
            seen_launch.add(e.key)
        elif e.topic == TOPIC_MESSAGE_SENT and e.value["campaign_id"] not in seen_launch:
            late.add(e.value["campaign_id"])
    assert late


def test_event_times_stay_within_hours(default):
    lo, hi = DEFAULT_BASE_MS - HOUR, DEFAULT_BASE_MS + 12 * HOUR
    for e in default.phase1 + default.phase2:
        v = e.value
        for f in ("sent_at", "received_at", "done_at", "at"):
            if v.get(f) is not None:
                assert lo <= v[f] <= hi, (f, v)
        if e.topic == TOPIC_CAMPAIGNS:
            assert v["created_at"] <= v["launched_at"] <= hi


# ------------------------------------------------------------------ messiness


def test_receipts_are_messy(default):
    order = {}
    first_sent_pos = {}
    receipts = []
    for pos, e in enumerate(default.phase1):
        if e.topic == TOPIC_MESSAGE_SENT:
            first_sent_pos.setdefault(e.key, pos)
        elif e.topic == TOPIC_DLR:
            receipts.append((pos, e.value))
            order.setdefault(e.value["event_id"], 0)
            order[e.value["event_id"]] += 1
    n = len(receipts)
    early = [r for pos, r in receipts if pos < first_sent_pos[r["message_id"]]]
    assert len(early) > 20
    assert any(c > 1 for c in order.values())  # the exact same receipt re-published
    ids = [r["event_id"] for _, r in receipts]
    dup_ids = {i for i, c in Counter(ids).items() if c > 1}
    values_of = defaultdict(list)
    for _, r in receipts:
        if r["event_id"] in dup_ids:
            values_of[r["event_id"]].append(r)
    assert all(all(v == vs[0] for v in vs) for vs in values_of.values())
    no_cid = sum(1 for _, r in receipts if r["campaign_id"] is None)
    assert 0.25 * n < no_cid < 0.35 * n
    assert any(r["done_at"] is None for _, r in receipts)
    statuses = {r["status"] for _, r in receipts}
    assert {"DELIVRD", "delivered", "ENROUTE", "queued", "PROVIDER_ACCEPTED"} <= statuses
    assert any(s != s.upper() and s != s.lower() for s in statuses)  # mixed case
    assert "001" in {r["error_code"] for _, r in receipts}
    # out of order: a receipt published after one with a later carrier time, same message
    last_carrier = {}
    out_of_order = 0
    for _, r in receipts:
        mid = r["message_id"]
        if mid in last_carrier and carrier(r) < last_carrier[mid]:
            out_of_order += 1
        last_carrier[mid] = max(carrier(r), last_carrier.get(mid, 0))
    assert out_of_order > 20


def test_message_sent_duplicated(default):
    ids = Counter(v["event_id"] for v in by_topic(default.phase1, TOPIC_MESSAGE_SENT))
    assert any(c > 1 for c in ids.values())


def test_folding_cases_present(default):
    """Two finals where the later wins, done_at ties, stray receipts, overridden PROVIDER_ERROR."""
    sent = {v["message_id"]: v for v in by_topic(default.phase1, TOPIC_MESSAGE_SENT)}
    rec = defaultdict(dict)
    for v in by_topic(default.phase1, TOPIC_DLR):
        rec[v["message_id"]][v["event_id"]] = v
    status = default.expected.message_status
    later_wins = tie = stray = pe_overridden = soft_then_delivered = 0
    for mid, rs in rec.items():
        finals = [(carrier(r), reference.map_status(r["provider"], r["status"], r["error_code"])) for r in rs.values()]
        finals = [f for f in finals if f[1] in FINAL]
        outcome = sent[mid]["outcome"]
        if outcome == "NOT_SENT":
            stray += 1
            assert status[mid] == "NOT_SENT"
            continue
        if outcome == "PROVIDER_ERROR" and finals:
            pe_overridden += status[mid] != "PROVIDER_ERROR"
        if len({s for _, s in finals}) > 1:
            times = [t for t, _ in finals]
            if len(set(times)) < len(times):
                tie += 1
            else:
                later_wins += 1
                ordered = [s for _, s in sorted(finals)]
                soft_then_delivered += ordered == ["SOFT_BOUNCE", "DELIVERED"]
        if status[mid] == "HARD_BOUNCE":  # never overtaken: a removal is never wrong
            hb = max(t for t, s in finals if s == "HARD_BOUNCE")
            assert all(t <= hb for t, s in finals)
    assert later_wins > 20 and tie > 10 and stray and pe_overridden and soft_then_delivered


def test_all_statuses_occur(default):
    counts = Counter(default.expected.message_status.values())
    assert set(counts) == {
        "PENDING",
        "PROVIDER_ACCEPTED",
        "DELIVERED",
        "SOFT_BOUNCE",
        "PROVIDER_ERROR",
        "HARD_BOUNCE",
        "UNKNOWN",
        "NOT_SENT",
    }
    assert counts["DELIVERED"] > 0.6 * sum(counts.values())


def test_unsubscribes_are_messy(default):
    p1 = by_topic(default.phase1, TOPIC_UNSUBSCRIBES)
    p2 = by_topic(default.phase2, TOPIC_UNSUBSCRIBES)
    assert p1 and all(u["campaign_id"] for u in p1) and {u["channel"] for u in p1} >= {"LINK"}
    assert any(c > 1 for c in Counter(u["event_id"] for u in p1).values())
    assert any(c > 1 for c in Counter(u["event_id"] for u in p2).values())
    stops = [u for u in p2 if u["channel"] == "STOP_KEYWORD"]
    assert len(stops) > 20
    assert any(u["action"] == "RESUBSCRIBE" for u in p2)
    # per phone (after normalization), in increasing `at` order across both phases
    history = defaultdict(list)
    for u in p1 + p2:
        history[reference.normalize(u["phone"])].append(u)
    for phone, us in history.items():
        ats = [u["at"] for u in us]
        assert ats == sorted(ats), phone
    again = [
        us
        for us in history.values()
        if "RESUBSCRIBE" in [u["action"] for u in us]
        and [u["action"] for u in us][-1] == "UNSUBSCRIBE"
        and [u["action"] for u in us].index("RESUBSCRIBE") < len(us) - 1
    ]
    assert again  # unsubscribes again after resubscribing
    repeated = [
        us
        for us in history.values()
        if len({u["event_id"] for u in us if u["action"] == "UNSUBSCRIBE"}) > 1
        and "RESUBSCRIBE" not in [u["action"] for u in us]
    ]
    assert repeated  # unsubscribes again while blacklisted
    t = default.traffic
    assert t["stop_replies_unattributed"] and t["stop_from_never_messaged_phone"] >= 2
    assert t["repeated_unsubscribes_while_blacklisted"] and t["unsubscribes_after_resubscribe"]
    assert any(not u["phone"].startswith("+") for u in p1 + p2)  # a national-format phone


def test_repeated_unsubscribe_counts_in_another_campaign(default):
    """A blacklisted phone that STOPs after a later campaign: no removal, but that campaign counts it."""
    submitted = defaultdict(list)
    for m in by_topic(default.phase1, TOPIC_MESSAGE_SENT):
        if m["outcome"] == "SUBMITTED":
            submitted[reference.normalize(m["phone"])].append((m["sent_at"], m["campaign_id"]))
    black = {r[2] for r in default.expected.removals if r[0] == "BLACKLISTED"}
    state, found = {}, 0
    seen = set()
    for u in by_topic(default.phase1 + default.phase2, TOPIC_UNSUBSCRIBES):
        if u["event_id"] in seen:
            continue
        seen.add(u["event_id"])
        phone = reference.normalize(u["phone"])
        if u["action"] == "RESUBSCRIBE":
            state.pop(phone, None)
            continue
        cid = u["campaign_id"]
        if cid is None:
            cands = [x for x in submitted[phone] if x[0] <= u["at"]]
            cid = max(cands)[1] if cands else None
        if phone in state:
            assert u["event_id"] not in black
            found += cid is not None and cid != state[phone]
        else:
            assert u["event_id"] in black
            state[phone] = cid
    assert found


# ------------------------------------------------------------------ expected


def test_expected_is_consistent(default):
    ex = default.expected
    sent = {v["message_id"]: v for v in by_topic(default.phase1, TOPIC_MESSAGE_SENT)}
    assert set(ex.message_status) == set(sent)
    total = 0
    for cid, s in ex.stats.items():
        mine = [m for m in sent.values() if m["campaign_id"] == cid]
        assert sum(s["status_counts"].values()) == s["sent"] + s["not_sent"] == len(mine)
        assert all(v > 0 for v in s["status_counts"].values())
        assert s["not_sent"] == sum(s["not_sent_by_reason"].values()) == s["status_counts"].get("NOT_SENT", 0)
        assert s["sent"] == sum(1 for m in mine if m["outcome"] in ("SUBMITTED", "PROVIDER_ERROR"))
        assert s["credits"] == sum(m["credits"] for m in mine)
        assert s["credits"] == sum(m["segments"] for m in mine if m["outcome"] != "NOT_SENT") * 0.25
        unattributed_reason = sum(1 for m in mine if m["outcome"] == "NOT_SENT" and m["not_sent_reason"] is None)
        assert s["not_sent_by_reason"].get("OTHER", 0) >= unattributed_reason
        assert s["launch_list_size"] == (len(mine) if s["kind"] == "BATCH" else 0)
        assert 0 < s["unsubscribed"] < s["sent"]
        total += len(mine)
    assert total == 2000
    hard = {mid for mid, st in ex.message_status.items() if st == "HARD_BOUNCE"}
    perm = {r for r in ex.removals if r[0] == "PERMANENT_ERROR"}
    assert {r[2] for r in perm} == hard
    for _, phone, mid in perm:
        assert phone == reference.normalize(sent[mid]["phone"])
    black = {r for r in ex.removals if r[0] == "BLACKLISTED"}
    assert ex.blacklisted <= {r[1] for r in black}
    unsub_ids = {u["event_id"] for u in by_topic(default.phase1 + default.phase2, TOPIC_UNSUBSCRIBES)}
    assert {r[2] for r in black} <= unsub_ids
    assert len(black) > len(ex.blacklisted)  # some were resubscribed, some re-blacklisted
    assert {r[0] for r in ex.removals} == {"PERMANENT_ERROR", "BLACKLISTED"}


@pytest.mark.parametrize(
    "seed,messages,campaigns", [(1, 2000, 5), (2, 2000, 5), (3, 3000, 8), (4, 40, 1), (5, 0, 2), (6, 500, 12)]
)
def test_expected_matches_a_literal_reading_of_the_contract(seed, messages, campaigns):
    sc = generate(seed=seed, messages=messages, campaigns=campaigns)
    ref = reference.fold(sc.phase1, sc.phase2)
    assert ref.message_status == sc.expected.message_status
    assert ref.removals == sc.expected.removals
    assert ref.blacklisted == sc.expected.blacklisted
    assert ref.stats == sc.expected.stats
    assert ref.suppressed == sc.expected.suppressed
    if messages >= 2000:  # both reasons occur, and hard bounces lifted by a later resubscribe
        assert {r for rs in ref.suppressed.values() for r in rs} == {"PERMANENT_ERROR", "BLACKLISTED"}
        bounced = {phone for reason, phone, _ in ref.removals if reason == "PERMANENT_ERROR"}
        assert any("PERMANENT_ERROR" not in ref.suppressed.get(phone, ()) for phone in bounced)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), messages=st.integers(0, 400), campaigns=st.integers(1, 7))
def test_expected_matches_reference_for_any_seed(seed, messages, campaigns):
    sc = generate(seed=seed, messages=messages, campaigns=campaigns)
    ref = reference.fold(sc.phase1, sc.phase2)
    assert (ref.stats, ref.removals, ref.message_status, ref.blacklisted, ref.suppressed) == (
        sc.expected.stats,
        sc.expected.removals,
        sc.expected.message_status,
        sc.expected.blacklisted,
        sc.expected.suppressed,
    )
    assert len({v["message_id"] for v in by_topic(sc.phase1, TOPIC_MESSAGE_SENT)}) == messages


def test_reference_reading_of_the_status_table():
    m = reference.map_status
    assert m("smpp", "delivrd", None) == "DELIVERED"
    assert m("smpp", "UNDELIV", "001") == "HARD_BOUNCE"
    assert m("smpp", "UNDELIV", "0x0B") == "SOFT_BOUNCE"
    assert m(None, "FAILED", "11") == "HARD_BOUNCE"
    assert m("twilio", "undelivered", "30005") == "HARD_BOUNCE"
    assert m("twilio", "failed", "1") == "SOFT_BOUNCE"
    assert m("vonage", "rejected", "4") == "HARD_BOUNCE"
    assert m("vonage", "failed", "30005") == "SOFT_BOUNCE"
    assert m("smsmode", "FAILED", "3525") == "HARD_BOUNCE"
    assert m("smsmode", "failed", "9") == "SOFT_BOUNCE"
    assert m("infobip", "UNDELIVERABLE", "9") == "HARD_BOUNCE"
    assert m("smpp", "EXPIRED", "1") == "SOFT_BOUNCE"
    assert m("twilio", "sent", None) == "PENDING"
    assert m("twilio", "whatever", None) == "UNKNOWN"
    assert m("vonage", "PROVIDER_ACCEPTED", None) == "PROVIDER_ACCEPTED"


def test_summary(default):
    text = default.summary()
    for cid, s in default.expected.stats.items():
        assert cid in text and s["name"] in text
    assert "PERMANENT_ERROR" in text and "BLACKLISTED" in text
    assert "early receipts" in text and "Phase 2" in text


def test_scales():
    sc = generate(seed=11, messages=30_000, campaigns=6)
    assert sum(s["sent"] + s["not_sent"] for s in sc.expected.stats.values()) == 30_000
    assert len(sc.expected.message_status) == 30_000
    assert len(sc.phase1) > 2 * 30_000


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate(messages=-1)
    with pytest.raises(ValueError):
        generate(campaigns=0)
