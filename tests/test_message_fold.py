"""Contract §5: folding the events of one message, as examples (rules 1–6) and properties."""

from __future__ import annotations

import random

import oracle
from hypothesis import given
from hypothesis import strategies as st
from strategies import HOUR, T0, message_events, redelivered

from processors import catalog
from processors.events import DeliveryReceipt, MessageSent
from processors.message_fold import fold, version, view
from processors.status_mapping import StatusMapper

M = StatusMapper()
TIMEOUT = 72 * HOUR


def send(outcome="SUBMITTED", at=T0, eid="s1", mid="m1", **kw) -> MessageSent:
    rec = {
        "event_id": eid,
        "campaign_id": "c1",
        "message_id": mid,
        "phone": "+33612345678",
        "sent_at": at,
        "outcome": outcome,
        "credits": 1.0,
        **kw,
    }
    return MessageSent.from_record(rec)


def dlr(status, at, eid, done_at=None, code=None, provider="smpp", mid="m1") -> DeliveryReceipt:
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


def fold_all(events, state=None):
    for e in events:
        state = fold(state, e, M)
    return state


def status(events, watermark=0):
    return view(fold_all(events), watermark, TIMEOUT).status


# --- rule 1 ----------------------------------------------------------------------------------
def test_rule1_a_seen_event_id_changes_nothing():
    s = fold_all([send(), dlr("DELIVRD", T0 + 10, "r1")])
    assert fold(s, dlr("DELIVRD", T0 + 10, "r1"), M) is s
    # even if the redelivered record differs (same id = same event): it is ignored
    assert fold(s, dlr("UNDELIV", T0 + 99, "r1", code="1"), M) is s
    assert fold(s, send(at=T0 - 5), M) is s
    assert view(s, 0, TIMEOUT).status == catalog.DELIVERED


# --- rule 2 ----------------------------------------------------------------------------------
def test_rule2_a_non_final_status_never_replaces_a_final_one():
    # the pending receipt is later in carrier time and still loses
    assert status([send(), dlr("DELIVRD", T0 + 10, "r1"), dlr("ENROUTE", T0 + 20, "r2")]) == catalog.DELIVERED
    assert status([send(), dlr("ENROUTE", T0 + 20, "r2"), dlr("DELIVRD", T0 + 10, "r1")]) == catalog.DELIVERED
    assert status([send(), dlr("ENROUTE", T0 + 20, "r2")]) == catalog.PENDING


# --- rule 3 ----------------------------------------------------------------------------------
def test_rule3_the_later_carrier_time_wins():
    a, b = dlr("DELIVRD", T0 + 10, "r1"), dlr("UNDELIV", T0 + 20, "r2", code="1")
    assert status([send(), a, b]) == catalog.HARD_BOUNCE
    assert status([send(), b, a]) == catalog.HARD_BOUNCE
    c = dlr("EXPIRED", T0 + 30, "r3")
    assert status([send(), c, a, b]) == catalog.SOFT_BOUNCE


def test_rule3_carrier_time_is_done_at_else_received_at():
    # received later but done earlier: done_at decides
    early_done = dlr("DELIVRD", T0 + 100, "r1", done_at=T0 + 5)
    no_done = dlr("EXPIRED", T0 + 50, "r2")
    assert status([send(), early_done, no_done]) == catalog.SOFT_BOUNCE
    assert status([send(), no_done, early_done]) == catalog.SOFT_BOUNCE
    late_done = dlr("DELIVRD", T0 + 10, "r3", done_at=T0 + 60)
    assert status([send(), no_done, late_done]) == catalog.DELIVERED


def test_rule3_tie_precedence():
    order = [
        ("UNDELIV", "1", catalog.HARD_BOUNCE),
        ("DELIVRD", None, catalog.DELIVERED),
        ("EXPIRED", None, catalog.SOFT_BOUNCE),
        ("UNKNOWN", None, catalog.UNKNOWN),
        ("PROVIDER_ACCEPTED", None, catalog.PROVIDER_ACCEPTED),
        ("PROVIDER_ERROR", None, catalog.PROVIDER_ERROR),
    ]
    at = T0 + 10
    for i, (hi_raw, hi_code, hi) in enumerate(order):
        for lo_raw, lo_code, _ in order[i + 1 :]:
            x = dlr(hi_raw, at, "x", code=hi_code)
            y = dlr(lo_raw, at + 7, "y", done_at=at, code=lo_code)  # same carrier time
            assert status([send(), x, y]) == hi
            assert status([send(), y, x]) == hi


# --- rule 4 ----------------------------------------------------------------------------------
def test_rule4_not_sent_is_final_at_once():
    ns = send("NOT_SENT", not_sent_reason="OPTED_OUT")
    for r in (dlr("DELIVRD", T0 + 10, "r1"), dlr("UNDELIV", T0 + 10, "r2", code="1")):
        assert status([ns, r]) == catalog.NOT_SENT
        assert status([r, ns]) == catalog.NOT_SENT
    assert status([ns], watermark=T0 + 10 * TIMEOUT) == catalog.NOT_SENT  # never times out


def test_rule4_provider_error_is_final_at_sent_at():
    pe = send("PROVIDER_ERROR", at=T0 + 100)
    assert status([pe]) == catalog.PROVIDER_ERROR
    assert status([pe], watermark=T0 + 10 * TIMEOUT) == catalog.PROVIDER_ERROR  # final: no timeout
    later, earlier = dlr("DELIVRD", T0 + 200, "r1"), dlr("DELIVRD", T0 + 50, "r2")
    assert status([pe, later]) == catalog.DELIVERED
    assert status([later, pe]) == catalog.DELIVERED
    assert status([pe, earlier]) == catalog.PROVIDER_ERROR
    assert status([earlier, pe]) == catalog.PROVIDER_ERROR
    # a tie with sent_at: PROVIDER_ERROR is the lowest precedence
    assert status([pe, dlr("PROVIDER_ACCEPTED", T0 + 100, "r3")]) == catalog.PROVIDER_ACCEPTED
    # a pending receipt never replaces it
    assert status([pe, dlr("ENROUTE", T0 + 300, "r4")]) == catalog.PROVIDER_ERROR


# --- rule 5 ----------------------------------------------------------------------------------
def test_rule5_receipts_before_the_send_are_held_and_folded_in():
    r1, r2 = dlr("ENROUTE", T0 + 5, "r1"), dlr("DELIVRD", T0 + 9, "r2")
    held = fold_all([r1, r2])
    assert view(held, T0 + 10 * TIMEOUT, TIMEOUT) is None  # not counted while the send is unknown
    s = fold(held, send(), M)
    assert view(s, 0, TIMEOUT).status == catalog.DELIVERED
    assert s == fold_all([send(), r1, r2])


# --- rule 6 ----------------------------------------------------------------------------------
def test_rule6_pending_becomes_unknown_72h_of_watermark_after_sent_at():
    s = fold_all([send(at=T0), dlr("ENROUTE", T0 + HOUR, "r1")])
    assert view(s, T0 + TIMEOUT - 1, TIMEOUT).status == catalog.PENDING
    v = view(s, T0 + TIMEOUT, TIMEOUT)
    assert (v.status, v.timed_out, v.status_at) == (catalog.UNKNOWN, True, T0 + TIMEOUT)
    # a later final receipt still corrects it, whatever its carrier time
    late = fold(s, dlr("DELIVRD", T0 + 100 * HOUR, "r2", done_at=T0 + 2 * HOUR), M)
    assert view(late, T0 + 200 * HOUR, TIMEOUT).status == catalog.DELIVERED
    # the timeout is configurable
    assert view(s, T0 + HOUR, HOUR).status == catalog.UNKNOWN


def test_version_grows_with_every_event_and_with_the_timeout():
    events = [send(), dlr("ENROUTE", T0 + 1, "r1"), dlr("ENROUTE", T0 + 2, "r2")]
    versions, s = [], None
    for e in events:
        s = fold(s, e, M)
        versions.append(version(s, view(s, 0, TIMEOUT)))
    versions.append(version(s, view(s, T0 + TIMEOUT, TIMEOUT)))
    assert versions == sorted(set(versions))


# --- properties ------------------------------------------------------------------------------
def _parse(send_rec, receipt_recs):
    return [MessageSent.from_record(send_rec)] + [DeliveryReceipt.from_record(r) for r in receipt_recs]


@given(message_events(), st.randoms(use_true_random=False))
def test_any_permutation_with_any_duplication_folds_to_the_same_state_and_view(msg, rng):
    events = _parse(*msg)
    reference = fold_all(events)
    shuffled = redelivered(rng, events, dup_rate=0.4)
    got = fold_all(shuffled)
    assert got == reference
    sent_at = events[0].sent_at
    for wm in (0, sent_at, sent_at + TIMEOUT - 1, sent_at + TIMEOUT, sent_at + 10 * TIMEOUT):
        assert view(got, wm, TIMEOUT) == view(reference, wm, TIMEOUT)
        assert version(got, view(got, wm, TIMEOUT)) == version(reference, view(reference, wm, TIMEOUT))


@given(message_events(), st.randoms(use_true_random=False), st.integers(0, 20))
def test_folded_status_is_the_contract_status(msg, rng, wm_tick):
    send_rec, receipt_recs = msg
    events = _parse(send_rec, receipt_recs)
    rng.shuffle(events)
    watermark = T0 + wm_tick * 6 * HOUR
    got = view(fold_all(events), watermark, TIMEOUT)
    assert got.status == oracle.message_status(send_rec, receipt_recs, watermark, TIMEOUT)
    assert catalog.is_final(got.status) == (got.status != catalog.PENDING)


@given(message_events(), st.randoms(use_true_random=False))
def test_each_fold_step_is_idempotent(msg, rng):
    events = _parse(*msg)
    rng.shuffle(events)
    s = None
    for e in events:
        s = fold(s, e, M)
        assert fold(s, e, M) is s


def test_fold_is_order_free_on_a_fixed_tricky_example():
    # a PROVIDER_ERROR send with an early failure, a tie and a pending receipt
    events = [
        send("PROVIDER_ERROR", at=T0 + 10),
        dlr("UNDELIV", T0 + 5, "r1", code="1"),
        dlr("EXPIRED", T0 + 10, "r2"),
        dlr("REJECTD", T0 + 10, "r3", code="9"),
        dlr("ENROUTE", T0 + 99, "r4"),
    ]
    results = set()
    for seed in range(50):
        evs = list(events)
        random.Random(seed).shuffle(evs)
        results.add(view(fold_all(evs), 0, TIMEOUT))
    assert len(results) == 1
    assert results.pop().status == catalog.HARD_BOUNCE  # r3: same time as sent_at, highest precedence
