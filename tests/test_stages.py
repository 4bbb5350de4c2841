"""The three stages one by one: message stage (§5, §7 PERMANENT_ERROR), phone stage (§6
attribution, §7 BLACKLISTED) and campaign stage (partials, versions, §6 stats)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import HOUR, T0

from processors import campaign_stage, catalog, state_codec
from processors.counters import CampaignCounters, Contribution, rates
from processors.events import DeliveryReceipt, MessageSent, Unsubscribe
from processors.message_stage import MessageStage
from processors.outputs import CAMPAIGN_EVENT, DEAD_LETTER, MESSAGE_STATUS, PHONE_EVENT, REMOVAL
from processors.phone_stage import PhoneStage
from processors.records import (
    Launch,
    MessageCounts,
    MessagePartial,
    MessageVersion,
    SendIndexed,
    Slot,
    Source,
    UnsubscribePartial,
    UnsubscribeVersion,
)
from processors.removals import BLACKLISTED, PERMANENT_ERROR, removal_id
from processors.status_mapping import StatusMapper

M = StatusMapper()
TIMEOUT = 72 * HOUR
PHONE = "+33612345678"


def send(mid="m1", outcome="SUBMITTED", at=T0, cid="c1", phone=PHONE, eid=None, credits=1.0, **kw):
    return MessageSent.from_record(
        {
            "event_id": eid or f"s-{mid}",
            "campaign_id": cid,
            "message_id": mid,
            "phone": phone,
            "sent_at": at,
            "outcome": outcome,
            "credits": credits,
            **kw,
        }
    )


def dlr(mid, status, at, eid, code=None, done_at=None, provider="smpp"):
    return DeliveryReceipt.from_record(
        {
            "event_id": eid,
            "message_id": mid,
            "provider": provider,
            "status": status,
            "error_code": code,
            "done_at": done_at,
            "received_at": at,
        }
    )


def unsub(eid, at, action="UNSUBSCRIBE", channel="STOP_KEYWORD", cid=None, phone=PHONE):
    return Unsubscribe.from_record(
        {"event_id": eid, "phone": phone, "campaign_id": cid, "action": action, "channel": channel, "at": at}
    )


def kinds(outs):
    return [o.kind for o in outs]


def stage(**kw) -> MessageStage:
    return MessageStage(0, {}, M, **kw)


# --- message stage -----------------------------------------------------------------------------
def test_a_send_publishes_its_status_and_indexes_the_phone():
    st_ = stage()
    out = st_.process(send())
    assert kinds(out) == [MESSAGE_STATUS, PHONE_EVENT]
    rec = out[0].value
    assert (rec["status"], rec["category"], rec["phone"], rec["campaign_id"]) == ("PENDING", "waiting", PHONE, "c1")
    assert out[1].value == SendIndexed(phone=PHONE, message_id="m1", campaign_id="c1", sent_at=T0)
    c = st_.counters["c1"]
    assert (c.sent, c.status_counts, c.credits_micro) == (1, {"PENDING": 1}, 1_000_000)


@pytest.mark.parametrize("outcome", ["PROVIDER_ERROR", "NOT_SENT"])
def test_only_submitted_sends_index_the_phone(outcome):
    out = stage().process(send(outcome=outcome))
    assert kinds(out) == [MESSAGE_STATUS]


def test_status_is_published_only_when_it_changes():
    st_ = stage()
    st_.process(send())
    assert kinds(st_.process(dlr("m1", "ENROUTE", T0 + 1, "r1"))) == []  # still PENDING
    assert kinds(st_.process(dlr("m1", "DELIVRD", T0 + 2, "r2"))) == [MESSAGE_STATUS]
    assert kinds(st_.process(dlr("m1", "EXPIRED", T0 + 1, "r3"))) == []  # earlier: loses


def test_hard_bounce_emits_one_permanent_error_removal_with_a_stable_id():
    st_ = stage()
    st_.process(send(contact_id="k9"))
    out = st_.process(dlr("m1", "UNDELIV", T0 + 5, "r1", code="001"))
    assert kinds(out) == [MESSAGE_STATUS, REMOVAL, PHONE_EVENT]  # the last: the fact for sms.suppressions
    assert (out[2].key, out[2].value.in_force, out[2].value.at) == (PHONE, True, T0 + 5)
    rem = out[1].value
    assert out[1].key == PHONE
    assert rem["event_id"] == removal_id(PERMANENT_ERROR, "m1")
    assert (
        rem["reason"],
        rem["phone"],
        rem["contact_id"],
        rem["campaign_id"],
        rem["message_id"],
        rem["status"],
        rem["error_code"],
    ) == ("PERMANENT_ERROR", PHONE, "k9", "c1", "m1", "HARD_BOUNCE", "001")
    # another hard bounce, later: the status record changes (its code), the removal is the same one
    out2 = st_.process(dlr("m1", "REJECTD", T0 + 9, "r2", code="9"))
    assert kinds(out2) == [MESSAGE_STATUS, PHONE_EVENT]  # the phone learns the bounce's new time
    assert (out2[1].value.in_force, out2[1].value.at) == (True, T0 + 9)
    # a redelivery re-emits the same removal (it may have been lost), never a new one
    again = st_.process(dlr("m1", "UNDELIV", T0 + 5, "r1", code="001"))
    assert [o.value["event_id"] for o in again if o.kind == REMOVAL] == [rem["event_id"]]


@pytest.mark.parametrize(
    "raw,code",
    [
        ("ENROUTE", None),
        ("EXPIRED", None),
        ("UNDELIV", "2"),
        ("UNKNOWN", None),
        ("DELIVRD", None),
        ("PROVIDER_ERROR", None),
    ],
)
def test_other_statuses_never_remove(raw, code):
    st_ = stage()
    out = st_.process(send()) + st_.process(dlr("m1", raw, T0 + 5, "r1", code=code))
    out += st_.process(send("m2", at=T0 + 100 * HOUR))  # times m1 out if still pending
    assert REMOVAL not in kinds(out)


def test_duplicates_re_emit_but_never_count_twice():
    st_ = stage()
    st_.process(send())
    st_.process(dlr("m1", "DELIVRD", T0 + 2, "r1"))
    before = st_.counters["c1"].counts()
    out = st_.process(dlr("m1", "DELIVRD", T0 + 2, "r1")) + st_.process(send())
    # the phone index again only with the send: a crash that lost it replays the send itself
    assert kinds(out) == [MESSAGE_STATUS, MESSAGE_STATUS, PHONE_EVENT]
    assert st_.counters["c1"].counts() == before


def test_early_receipts_are_held_then_counted_once_in_the_folded_status():
    st_ = stage()
    assert st_.process(dlr("m1", "ENROUTE", T0 + 1, "r1")) == []
    assert st_.process(dlr("m1", "DELIVRD", T0 + 2, "r2")) == []
    assert st_.counters == {}
    out = st_.process(send())
    assert [o.value["status"] for o in out if o.kind == MESSAGE_STATUS] == ["DELIVERED"]
    c = st_.counters["c1"]
    assert (c.sent, c.status_counts, c.n_receipts) == (1, {"DELIVERED": 1}, 2)


def test_early_hard_bounce_removes_when_the_send_arrives():
    st_ = stage()
    assert st_.process(dlr("m1", "UNDELIV", T0 + 1, "r1", code="1")) == []
    out = st_.process(send())
    assert REMOVAL in kinds(out)


def test_pending_times_out_on_the_partition_watermark_and_a_later_receipt_corrects_it():
    st_ = stage()
    st_.process(send("m1", at=T0))
    st_.process(dlr("m1", "ENROUTE", T0 + HOUR, "r1"))  # a pending receipt: the message is tracked twice
    out = st_.process(send("m2", at=T0 + TIMEOUT - 1))
    assert st_.counters["c1"].status_counts == {"PENDING": 2}
    out = st_.process(send("m3", at=T0 + TIMEOUT))  # watermark reaches m1's deadline
    statuses = [(o.key, o.value["status"]) for o in out if o.kind == MESSAGE_STATUS]
    assert statuses.count(("m1", "UNKNOWN")) == 1
    assert st_.counters["c1"].status_counts == {"UNKNOWN": 1, "PENDING": 2}
    out = st_.process(dlr("m1", "DELIVRD", T0 + 200 * HOUR, "r2", done_at=T0 + 2 * HOUR))
    assert [o.value["status"] for o in out if o.kind == MESSAGE_STATUS and o.key == "m1"] == ["DELIVERED"]
    # the receipt moved the watermark too: m2 and m3 timed out
    assert st_.counters["c1"].status_counts == {"DELIVERED": 1, "UNKNOWN": 2}


def test_a_message_arriving_after_its_deadline_is_unknown_at_once():
    st_ = stage()
    st_.process(send("m2", at=T0 + 100 * HOUR))
    out = st_.process(send("m1", at=T0))
    assert [o.value["status"] for o in out if o.kind == MESSAGE_STATUS] == ["UNKNOWN"]
    assert st_.counters["c1"].status_counts == {"UNKNOWN": 1, "PENDING": 1}


def test_rebuild_after_timeouts_reproduces_the_counters():
    st_ = stage()
    for i in range(3):
        st_.process(send(f"m{i}", at=T0 + i))
        st_.process(dlr(f"m{i}", "ENROUTE", T0 + i + 1, f"r{i}"))
        st_.process(dlr(f"m{i}", "BUFFRED", T0 + i + 2, f"q{i}"))
    st_.process(send("late", at=T0 + 100 * HOUR))
    fresh = MessageStage(0, st_.store, M)
    fresh.rebuild(st_.store.values())
    assert fresh.counters == st_.counters
    assert fresh.watermark == st_.watermark
    assert st_.counters["c1"].status_counts == {"UNKNOWN": 3, "PENDING": 1}


def test_flush_partials_are_absolute_and_versioned():
    st_ = stage()
    st_.process(send("m1"))
    st_.process(send("m2", cid="c2", outcome="NOT_SENT", not_sent_reason="OPTED_OUT"))
    parts = st_.flush_partials(123)
    assert [o.key for o in parts] == ["c1", "c2"] and all(o.kind == CAMPAIGN_EVENT for o in parts)
    p1, p2 = parts[0].value, parts[1].value
    assert isinstance(p1, MessagePartial) and isinstance(p2, MessagePartial)
    assert (p1.slot, p1.version, p1.at) == (Slot(Source.MESSAGES, 0), MessageVersion(1, 0, watermark=T0), 123)
    assert p1.counts.sent == 1 and p2.counts.not_sent_by_reason == {"OPTED_OUT": 1}
    assert st_.flush_partials(124) == []  # nothing dirty
    st_.process(dlr("m1", "DELIVRD", T0 + 5, "r1"))
    assert [o.value.version for o in st_.flush_partials(125)] == [(1, 1, T0 + 5)]


# --- phone stage --------------------------------------------------------------------------------
def phones(window=None) -> PhoneStage:
    """A phone stage for the removal and attribution rules alone: what it publishes to
    sms.suppressions is tested in tests/test_suppressions.py."""
    if window is None:
        return PhoneStage(0, {}, suppressions=False)
    return PhoneStage(0, {}, attribution_window_ms=window, suppressions=False)


def test_unsubscribe_with_campaign_id_is_attributed_to_it():
    ps = phones()
    ps.index_send(PHONE, "c2", "m9", T0)
    out = ps.process_unsubscribe(unsub("u1", T0 + 1, channel="LINK", cid="c1"))
    assert ps.unsubscribed == {"c1": 1}
    assert kinds(out) == [REMOVAL]
    rem = out[0].value
    assert (rem["event_id"], rem["reason"], rem["campaign_id"], rem["channel"], out[0].key) == (
        removal_id(BLACKLISTED, "u1"),
        "BLACKLISTED",
        "c1",
        "LINK",
        PHONE,
    )


def test_stop_is_attributed_to_the_latest_submitted_send_within_the_window():
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    ps.index_send(PHONE, "c2", "m2", T0 + 10 * HOUR)
    ps.index_send(PHONE, "c3", "m3", T0 + 30 * HOUR)  # after the STOP: not a candidate
    ps.process_unsubscribe(unsub("u1", T0 + 20 * HOUR))
    assert ps.unsubscribed == {"c2": 1}


def test_stop_window_is_inclusive_and_configurable():
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    ps.process_unsubscribe(unsub("u1", T0 + 72 * HOUR))  # exactly 72 h: attributed
    assert ps.unsubscribed == {"c1": 1}
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    ps.process_unsubscribe(unsub("u1", T0 + 72 * HOUR + 1))  # 1 ms more: not attributed
    assert ps.unsubscribed == {}
    ps2 = PhoneStage(0, {}, attribution_window_ms=HOUR)
    ps2.index_send(PHONE, "c1", "m1", T0)
    ps2.process_unsubscribe(unsub("u1", T0 + 2 * HOUR))
    assert ps2.unsubscribed == {}


def test_stop_at_the_send_time_is_attributed():
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    ps.process_unsubscribe(unsub("u1", T0))
    assert ps.unsubscribed == {"c1": 1}


@pytest.mark.parametrize("channel", ["LINK", "MANUAL", "COMPLAINT", "OTHER"])
def test_other_channels_without_campaign_are_attributed_to_none(channel):
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    out = ps.process_unsubscribe(unsub("u1", T0 + 1, channel=channel))
    assert ps.unsubscribed == {} and kinds(out) == [REMOVAL]  # still blacklisted
    assert out[0].value["campaign_id"] is None


def test_a_send_processed_after_the_stop_does_not_re_attribute_it():
    ps = phones()
    ps.process_unsubscribe(unsub("u1", T0 + 1))
    ps.index_send(PHONE, "c1", "m1", T0)
    assert ps.unsubscribed == {}
    assert ps.process_unsubscribe(unsub("u1", T0 + 1)) != [] and ps.unsubscribed == {}  # redelivery: same


def test_unsubscribed_counts_distinct_phones():
    ps = phones()
    ps.process_unsubscribe(unsub("u1", T0, cid="c1"))
    ps.process_unsubscribe(unsub("u2", T0 + 1, cid="c1"))
    ps.process_unsubscribe(unsub("u3", T0 + 2, cid="c1", phone="+33612345679"))
    assert ps.unsubscribed == {"c1": 2}
    assert ps.attributions == {"c1": 3}


def test_blacklist_one_removal_per_phone_until_resubscribed():
    ps = phones()
    r1 = ps.process_unsubscribe(unsub("u1", T0 + 1))
    assert [o.value["event_id"] for o in r1] == [removal_id(BLACKLISTED, "u1")]
    assert ps.process_unsubscribe(unsub("u2", T0 + 2)) == []  # already blacklisted
    assert ps.process_unsubscribe(unsub("r1", T0 + 3, action="RESUBSCRIBE")) == []
    assert not ps.store[PHONE].blacklisted
    r3 = ps.process_unsubscribe(unsub("u3", T0 + 4))  # later than the resubscribe: a second removal
    assert [o.value["event_id"] for o in r3] == [removal_id(BLACKLISTED, "u3")]
    assert ps.store[PHONE].blacklisted


def test_an_unsubscribe_older_than_the_resubscribe_does_not_blacklist():
    ps = phones()
    ps.process_unsubscribe(unsub("r1", T0 + 10, action="RESUBSCRIBE"))
    assert ps.process_unsubscribe(unsub("u1", T0 + 5)) == []
    assert not ps.store[PHONE].blacklisted


def test_a_resubscribe_older_than_the_unsubscribe_does_not_lift_it():
    ps = phones()
    assert ps.process_unsubscribe(unsub("u1", T0 + 10)) != []
    ps.process_unsubscribe(unsub("r1", T0 + 5, action="RESUBSCRIBE"))
    assert ps.store[PHONE].blacklisted
    assert ps.process_unsubscribe(unsub("u2", T0 + 20)) == []


def test_redelivered_unsubscribe_re_emits_the_same_removal_and_counts_nothing():
    ps = phones()
    first = ps.process_unsubscribe(unsub("u1", T0, cid="c1"))
    ps.process_unsubscribe(unsub("u2", T0 + 1))
    again = ps.process_unsubscribe(unsub("u1", T0, cid="c1"))
    assert again == first
    assert ps.process_unsubscribe(unsub("u2", T0 + 1)) == []
    assert (ps.unsubscribed, ps.attributions) == ({"c1": 1}, {"c1": 1})
    assert [o.value for o in ps.flush_partials(1)] == [
        UnsubscribePartial("c1", 0, UnsubscribeVersion(attributions=1), unsubscribed=1, last_event_at=T0, at=1)
    ]


def test_phone_stage_rebuild_reproduces_its_counts():
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    for i, (cid, phone) in enumerate([(None, PHONE), ("c2", PHONE), ("c2", "+33612345679"), (None, "x")]):
        ps.process_unsubscribe(unsub(f"u{i}", T0 + i, cid=cid, phone=phone))
    fresh = PhoneStage(0, ps.store)
    fresh.rebuild(ps.store.values())
    assert (fresh.unsubscribed, fresh.attributions, fresh.last_event_at) == (
        ps.unsubscribed,
        ps.attributions,
        ps.last_event_at,
    )
    assert ps.unsubscribed == {"c1": 1, "c2": 2}


# --- counters -------------------------------------------------------------------------------------
def test_rates_are_fractions_of_sent_and_zero_without_sends():
    assert rates(0, {"NOT_SENT": 3}, 2) == {n: 0.0 for n in catalog.RATE_NAMES}
    r = rates(4, {"DELIVERED": 1, "PROVIDER_ACCEPTED": 1, "PENDING": 1, "HARD_BOUNCE": 1, "NOT_SENT": 5}, 1)
    assert r == {
        "receipt": 0.5,
        "delivery": 0.25,
        "waiting": 0.25,
        "temporary_error": 0.0,
        "permanent_error": 0.25,
        "unknown": 0.0,
        "unsubscribe": 0.25,
    }


@given(
    st.dictionaries(st.sampled_from([s for s in catalog.STATUSES if s != "NOT_SENT"]), st.integers(1, 50)),
    st.integers(0, 10),
    st.integers(0, 20),
)
def test_rates_partition_the_sent_messages(counts, not_sent, unsub_):
    sent = sum(counts.values())
    r = rates(sent, {**counts, "NOT_SENT": not_sent} if not_sent else counts, unsub_)
    parts = r["receipt"] + r["waiting"] + r["temporary_error"] + r["permanent_error"] + r["unknown"]
    assert parts == pytest.approx(1.0 if sent else 0.0)
    assert r["delivery"] <= r["receipt"]


def test_counter_contributions_cancel_out():
    c = CampaignCounters()
    a = Contribution("c1", 1, None, "DELIVERED", 1_500_000, 1, 2, "le_10", "twilio", "unknown")
    b = Contribution("c1", 0, "OPTED_OUT", "NOT_SENT", 0, 1, 0, None, None, None)
    c.apply(a, 1)
    c.apply(b, 1)
    c.apply(a, -1)
    assert (c.sent, c.not_sent, c.not_sent_by_reason, c.status_counts, c.credits_micro) == (
        0,
        1,
        {"OPTED_OUT": 1},
        {"NOT_SENT": 1},
        0,
    )
    assert (c.delivery_seconds, c.by_provider, c.by_operator) == ({}, {}, {})


_contributions = st.builds(
    lambda sent, reason, status, cr, ns, nr, bucket, provider, operator: Contribution(
        "c1",
        sent,
        None if sent else reason,
        status,
        cr if sent else 0,
        ns,
        nr,
        bucket if status == "DELIVERED" else None,
        provider if sent else None,
        operator if sent else None,
    ),
    st.integers(0, 1),
    st.sampled_from(["OPTED_OUT", "INVALID_NUMBER", "OTHER"]),
    st.sampled_from(["PENDING", "DELIVERED", "HARD_BOUNCE", "NOT_SENT", "UNKNOWN"]),
    st.integers(0, 5_000_000),
    st.integers(0, 3),
    st.integers(0, 5),
    st.sampled_from(["le_5", "le_60", "gt_259200"]),
    st.sampled_from(["unknown", "twilio", "smpp"]),
    st.sampled_from(["unknown", "orange", "sfr"]),
)


@given(st.lists(_contributions, min_size=1, max_size=6), _contributions, _contributions)
def test_moving_a_contribution_is_removing_the_old_and_adding_the_new(others, old, new):
    """``move`` is the hot path's shortcut for apply(old, -1) + apply(new, +1)."""
    moved, applied = CampaignCounters(), CampaignCounters()
    for c in [*others, old]:
        moved.apply(c, +1)
        applied.apply(c, +1)
    moved.move(old, new)
    applied.apply(old, -1)
    applied.apply(new, +1)
    assert moved == applied


# --- campaign stage ---------------------------------------------------------------------------------
def m_part(p, v, sent, sc=None, le=None, at=0, cr=0, fs=None):
    return MessagePartial(
        "c1", p, MessageVersion(*v), MessageCounts(sent, 0, {}, sc or {"PENDING": sent}, cr, fs, le), at
    )


def u_part(p, v, n, le=None, at=0):
    return UnsubscribePartial("c1", p, UnsubscribeVersion(*v), n, le, at)


def fold_log(log, state=None, offsets=None):
    for off, rec in zip(offsets, (log[o] for o in offsets)) if offsets is not None else enumerate(log):
        state = campaign_stage.fold(state, "c1", rec, off)
    return state


def test_campaign_stats_sum_the_latest_partial_of_each_partition():
    log = [
        m_part(0, [1, 0, 5], 1, cr=2_000_000, fs=5, le=5),
        m_part(1, [2, 0, 7], 2, fs=3, le=7),
        u_part(0, [1], 1, le=9),
        m_part(0, [1, 1, 8], 1, sc={"DELIVERED": 1}, cr=2_000_000, fs=5, le=8),
    ]
    s = campaign_stage.stats(fold_log(log))
    assert (s["sent"], s["status_counts"], s["unsubscribed"], s["credits"]) == (
        3,
        {"DELIVERED": 1, "PENDING": 2},
        1,
        2.0,
    )
    assert (s["first_sent_at"], s["last_event_at"], s["version"]) == (3, 9, 4)
    assert s["rates"]["unsubscribe"] == pytest.approx(1 / 3)
    assert s["name"] is None  # optional until the launch is seen


def test_a_stale_partial_is_ignored():
    newer, older = m_part(0, [2, 1, 9], 2, sc={"DELIVERED": 2}), m_part(0, [1, 0, 5], 1)
    s = fold_log([newer, older])
    assert campaign_stage.stats(s)["status_counts"] == {"DELIVERED": 2}
    assert s.last_offset == 1  # the offset moves on, the figures do not
    # not dominating either way (concurrent): also ignored
    s2 = fold_log([newer, m_part(0, [3, 0, 9], 3)])
    assert campaign_stage.stats(s2)["sent"] == 2


def test_a_replayed_offset_is_ignored():
    log = [m_part(0, [1, 0, 5], 1), m_part(0, [2, 0, 6], 2)]
    s = fold_log(log)
    assert campaign_stage.fold(s, "c1", m_part(0, [9, 9, 9], 9), 1) is s
    assert campaign_stage.fold(s, "c1", log[0], 0) is s


def test_the_launch_sets_the_summary():
    launch = Launch(
        at=77,
        name="N",
        kind="BATCH",
        text="T",
        sender_id="S",
        sms_type="marketing",
        created_at=1,
        launched_at=77,
        launch_list_size=10,
    )
    s = campaign_stage.stats(fold_log([m_part(0, [1, 0, 5], 1), launch]))
    assert {k: s[k] for k in campaign_stage.SUMMARY_FIELDS} == {
        k: getattr(launch, k) for k in campaign_stage.SUMMARY_FIELDS
    }
    assert s["sent"] == 1 and s["updated_at"] == 77


@st.composite
def partial_logs(draw):
    """A campaign log: per slot, partials with growing version vectors and growing counts,
    interleaved in any order (so stale ones may follow newer ones)."""
    log = []
    for slot in range(draw(st.integers(1, 3))):
        kind, p = ("m", slot) if slot < 2 else ("u", 0)
        v = [0, 0, 0] if kind == "m" else [0]
        n = 0
        for _ in range(draw(st.integers(1, 5))):
            v = [x + draw(st.integers(0, 2)) for x in v]
            n = sum(v[:2]) if kind == "m" else v[0]
            log.append(m_part(p, list(v), n, le=v[-1]) if kind == "m" else u_part(p, list(v), n))
    return draw(st.permutations(log))


def _stable(s):
    return {k: v for k, v in campaign_stage.stats(s).items() if k != "updated_at"}


@given(partial_logs(), st.randoms(use_true_random=False))
def test_campaign_fold_holds_the_dominating_partial_and_ignores_replays(log, rng):
    once = fold_log(log)
    # expected: per slot, the greatest version vector (they are totally ordered per slot here)
    best = {}
    for rec in log:
        if rec.slot not in best or all(a >= b for a, b in zip(rec.version, best[rec.slot].version, strict=True)):
            best[rec.slot] = rec
    expected = fold_log(sorted(best.values(), key=lambda r: r.slot))
    exp = campaign_stage.stats(expected)
    got = campaign_stage.stats(once)
    for k in ("sent", "status_counts", "unsubscribed", "last_event_at"):
        assert got[k] == exp[k]
    # at-least-once: re-reading from any earlier offset, any number of times, changes nothing,
    # and the stats for a given offset are always the same
    at_offset = {}
    state = None
    offsets = []
    pos = 0
    while pos < len(log):
        offsets.append(pos)
        if rng.random() < 0.3:
            pos = rng.randint(0, pos)  # crash: resume from an earlier committed offset
        else:
            pos += 1
    for off in offsets:
        state = campaign_stage.fold(state, "c1", log[off], off)
        snap = _stable(state)
        assert at_offset.setdefault(state.last_offset, snap) == snap
    assert state == once


def test_stats_for_a_version_are_identical_whoever_computes_them():
    log = [m_part(random.Random(i).randint(0, 1), [i, i, i], i) for i in range(10)]
    a, b = fold_log(log[:6]), fold_log(log[:6])
    assert campaign_stage.stats(a) == campaign_stage.stats(b)
    assert campaign_stage.stats(a)["version"] == 6


# --- orphan receipts (rule 5: reported after a window of event time, still held) -----------------------
def dead(outs):
    return [o for o in outs if o.kind == DEAD_LETTER]


def test_receipts_without_a_send_are_reported_once_after_the_window_and_still_folded_in():
    st_ = stage()
    assert st_.process(dlr("m1", "DELIVRD", T0, "r1")) == []
    assert st_.process(dlr("m1", "ENROUTE", T0 + 10 * HOUR, "r2")) == []  # pushes the orphan deadline
    assert dead(st_.process(send("m2", at=T0 + 34 * HOUR - 1))) == []  # 24 h after r2, minus 1 ms
    out = dead(st_.process(send("m3", at=T0 + 34 * HOUR)))
    assert [(o.key, o.value["error_kind"], o.value["receipts"]) for o in out] == [("m1", "orphan_receipt", 2)]
    assert "m1" in out[0].value["reason"]
    # reported once: neither later events nor redeliveries report it again
    assert (
        dead(st_.process(dlr("m1", "ENROUTE", T0 + 40 * HOUR, "r3")) + st_.process(send("m4", at=T0 + 99 * HOUR))) == []
    )
    assert st_.process(dlr("m1", "DELIVRD", T0, "r1")) == []
    # the send still arrives: the message is counted, in its folded status
    out = st_.process(send("m1", at=T0 - HOUR))
    assert [o.value["status"] for o in out if o.kind == MESSAGE_STATUS] == ["DELIVERED"]
    assert st_.counters["c1"].status_counts["DELIVERED"] == 1


def test_a_message_whose_send_came_in_time_is_never_reported():
    st_ = stage()
    st_.process(dlr("m1", "DELIVRD", T0, "r1"))
    st_.process(send("m1", at=T0))
    assert dead(st_.process(send("m2", at=T0 + 100 * HOUR))) == []


def test_the_orphan_window_is_configurable_and_survives_a_rebuild():
    st_ = MessageStage(0, {}, M, orphan_window_ms=HOUR)
    st_.process(dlr("a", "DELIVRD", T0, "r1"))
    assert [o.key for o in dead(st_.process(dlr("b", "DELIVRD", T0 + HOUR, "r2")))] == ["a"]  # 1 h later
    fresh = MessageStage(0, st_.store, M, orphan_window_ms=HOUR)
    fresh.rebuild(st_.store.values())
    assert [o.key for o in dead(fresh.process(send("m2", at=T0 + 5 * HOUR)))] == ["b"]  # a: already reported


# --- state codec (the changelogged tables) -------------------------------------------------------------
def test_state_codec_round_trips_every_stage_state():
    st_ = stage()
    st_.process(send("m1", contact_id="k1", provider="twilio", credits=0.07))
    st_.process(dlr("m1", "ENROUTE", T0 + 1, "r1"))
    st_.process(dlr("m1", "UNDELIV", T0 + 2, "r2", code="001"))
    st_.process(dlr("m2", "DELIVRD", T0 + 2, "r3"))
    st_.process(send("m3", outcome="NOT_SENT", not_sent_reason="OPTED_OUT", phone="not-a-phone"))
    st_.process(send("m4", at=T0 + 200 * HOUR))  # m2 is reported as an orphan (its flag is state too)
    assert st_.store["m2"].orphan_reported
    for s in st_.store.values():
        assert state_codec.decode_message(state_codec.encode_message(s)) == s
    ps = phones()
    ps.index_send(PHONE, "c1", "m1", T0)
    ps.process_unsubscribe(unsub("u1", T0 + 1))
    ps.process_unsubscribe(unsub("u2", T0 + 2, action="RESUBSCRIBE", cid="c2"))
    for s in ps.store.values():
        assert state_codec.decode_phone(state_codec.encode_phone(s)) == s
    cs = fold_log([m_part(0, [1, 0, 5], 1, sc={"DELIVERED": 1}, cr=70_000, fs=5, le=5), u_part(0, [1], 1, le=9)])
    assert state_codec.decode_campaign(state_codec.encode_campaign(cs)) == cs
    assert campaign_stage.stats(state_codec.decode_campaign(state_codec.encode_campaign(cs))) == campaign_stage.stats(
        cs
    )


def test_state_codec_refuses_unknown_format_versions_naming_them():
    st_ = stage()
    st_.process(send("m1"))
    raw = state_codec.encode_message(st_.store["m1"])
    assert raw[0] == 1  # the format version byte
    for decode in (state_codec.decode_message, state_codec.decode_phone, state_codec.decode_campaign):
        with pytest.raises(state_codec.FormatVersionError, match="format version 2"):
            decode(b"\x02" + raw[1:])
        with pytest.raises(ValueError, match="format version 91"):  # e.g. a JSON state of older code: "[1, ..."
            decode(b"[1]")


def test_updated_at_never_goes_back():
    """Log records carry the clocks of the workers that wrote them; the stats' time only moves on."""
    launch = Launch(
        at=50,
        name="N",
        kind="BATCH",
        text="T",
        sender_id="S",
        sms_type="marketing",
        created_at=1,
        launched_at=1,
        launch_list_size=10,
    )
    late = m_part(0, [1, 0, 5], 1, at=100)
    s = campaign_stage.stats(fold_log([late, launch]))
    assert s["updated_at"] == 100
