"""The internal records and their one codec (processors/records.py, processors/state_codec.py):
every record type round-trips, the format-version byte is checked, and the stages output
the typed records (not dicts) for the internal topics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import T0

from processors import campaign_stage, records, state_codec
from processors.campaign_stage import CampaignState
from processors.events import MessageSent, Unsubscribe
from processors.message_fold import FinalReceipt, MessageState
from processors.message_stage import MessageStage
from processors.outputs import CAMPAIGN_EVENT, PHONE_EVENT
from processors.phone_stage import Handled, IndexedSend, PhoneStage, PhoneState
from processors.records import (
    FormatVersionError,
    HardBounce,
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
from processors.status_mapping import StatusMapper

text = st.text(max_size=12)
ids = st.text(min_size=1, max_size=12)
opt_text = st.none() | text
ms = st.integers(0, 2**62)  # timestamps, offsets, counts: any int64 the stages could hold
opt_ms = st.none() | ms
counts = st.dictionaries(text, st.integers(-(2**40), 2**40), max_size=10)

message_sent = st.builds(
    MessageSent,
    ids,
    ids,
    ids,
    opt_text,
    text,
    st.booleans(),
    ms,
    text,
    opt_text,
    st.integers(0, 100),
    st.floats(0, 1e9, allow_nan=False),
    opt_text,
    opt_text,
    opt_text,
)
unsubscribe = st.builds(Unsubscribe, ids, text, st.booleans(), opt_text, opt_text, text, text, opt_text, ms)
send_indexed = st.builds(SendIndexed, text, ids, ids, ms)
hard_bounce = st.builds(HardBounce, text, ids, st.integers(0, 2**40), st.booleans(), ms, opt_text, ids)
launch = st.builds(Launch, ms, text, text, text, text, text, ms, ms, st.integers(0, 2**40))
message_partial = st.builds(
    MessagePartial,
    ids,
    st.integers(0, 1000),
    st.builds(MessageVersion, ms, ms, ms),
    st.builds(MessageCounts, ms, ms, counts, counts, st.integers(-(2**62), 2**62), opt_ms, opt_ms),
    ms,
)
unsubscribe_partial = st.builds(
    UnsubscribePartial, ids, st.integers(0, 1000), st.builds(UnsubscribeVersion, ms), ms, opt_ms, ms
)
final = st.builds(FinalReceipt, ms, st.integers(0, 20), ids, text, opt_text, opt_text)
message_state = st.builds(
    MessageState,
    ids,
    st.integers(0, 1000),
    st.none() | message_sent,
    st.frozensets(ids, max_size=4),
    st.frozensets(ids, max_size=6),
    st.none() | final,
    opt_ms,
    ms,
    st.booleans(),
)
phone_state = st.builds(
    PhoneState,
    text,
    st.integers(0, 1000),
    st.lists(st.builds(IndexedSend, ms, ids, ids), max_size=5).map(tuple),
    st.lists(st.tuples(ids, st.builds(Handled, opt_text, st.booleans(), ms)), max_size=5).map(tuple),
    st.none() | st.tuples(ms, ids, st.sampled_from(["UNSUBSCRIBE", "RESUBSCRIBE"])),
    opt_text,
)


@st.composite
def campaign_state(draw: st.DrawFn) -> CampaignState:
    parts = draw(st.lists(message_partial | unsubscribe_partial, max_size=8))
    return CampaignState(
        draw(ids), draw(st.integers(-1, 2**62)), draw(ms), draw(st.none() | launch), {p.slot: p for p in parts}
    )


@given(send_indexed | unsubscribe | hard_bounce)
def test_phone_events_round_trip(ev):
    raw = records.encode_phone_event(ev)
    assert raw[0] == records.FORMAT_VERSION
    back = records.decode_phone_event(raw)
    assert back == ev and type(back) is type(ev)
    assert records.encode_internal(ev) == raw


@given(launch | message_partial | unsubscribe_partial)
def test_campaign_events_round_trip(ev):
    raw = records.encode_campaign_event(ev)
    back = records.decode_campaign_event(raw)
    assert back == ev and type(back) is type(ev)
    assert records.encode_internal(ev) == raw


@given(message_state)
def test_message_states_round_trip(s):
    raw = state_codec.encode_message(s)
    assert state_codec.decode_message(raw) == s
    assert state_codec.message_event_time(raw) == s.max_event_time


@given(phone_state)
def test_phone_states_round_trip(s):
    assert state_codec.decode_phone(state_codec.encode_phone(s)) == s


@given(campaign_state())
def test_campaign_states_round_trip(s):
    back = state_codec.decode_campaign(state_codec.encode_campaign(s))
    assert back == s
    assert campaign_stage.stats(back) == campaign_stage.stats(s)


CODECS = [
    records.PHONE_EVENTS,
    records.CAMPAIGN_EVENTS,
    state_codec.MESSAGES,
    state_codec.PHONES,
    state_codec.CAMPAIGNS,
]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.what)
@pytest.mark.parametrize("version", [0, 2, 255])
def test_an_unknown_format_version_is_a_clear_error_naming_it(codec, version):
    with pytest.raises(
        FormatVersionError,
        match=f"{codec.what} record in format version {version}, which this "
        r"code cannot read \(it reads 1\)",
    ):
        codec.decode(bytes([version]) + b"\x90")


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.what)
def test_an_empty_record_is_a_clear_error(codec):
    with pytest.raises(FormatVersionError, match="no format version byte"):
        codec.decode(b"")


def test_a_reader_of_an_older_version_is_how_the_next_change_reads_the_old_format():
    old = {0: lambda payload: SendIndexed("+33600000000", "m", "c", int(bytes(payload)))}
    codec = records.Codec("phone event", records.PhoneEvent, readers=old)
    assert codec.decode(b"\x00" + b"123") == SendIndexed("+33600000000", "m", "c", 123)
    ev = SendIndexed("+33612345678", "m1", "c1", T0)
    assert codec.decode(codec.encode(ev)) == ev
    with pytest.raises(FormatVersionError, match=r"\(it reads 0, 1\)"):
        codec.decode(b"\x07")


def test_the_wrong_kind_of_record_is_refused():
    with pytest.raises(Exception, match="Expected|tag|Invalid"):
        records.decode_phone_event(records.encode_campaign_event(Launch(1, "n", "BATCH", "t", "s", "m", 1, 1, 1)))
    with pytest.raises(TypeError, match="not an internal event record: dict"):
        records.encode_internal({"type": "send"})


def test_slots_are_typed_source_partition_pairs():
    m = MessagePartial("c1", 3, MessageVersion(1, 2, 3), MessageCounts(1, 0, {}, {}, 0, None, None), 0)
    u = UnsubscribePartial("c1", 3, UnsubscribeVersion(1), 1, None, 0)
    assert m.slot == Slot(Source.MESSAGES, 3) and u.slot == Slot(Source.UNSUBSCRIBES, 3) and m.slot != u.slot


def test_records_are_frozen():
    ev = SendIndexed("+33612345678", "m1", "c1", T0)
    with pytest.raises(AttributeError):
        ev.sent_at = 0  # type: ignore[misc]


# --- the stages output the typed records ------------------------------------------------------------
PHONE = "+33612345678"


def test_the_stages_outputs_for_the_internal_topics_are_typed_records():
    ms_ = MessageStage(2, {}, StatusMapper())
    send = MessageSent.from_record(
        {
            "event_id": "s1",
            "campaign_id": "c1",
            "message_id": "m1",
            "phone": PHONE,
            "sent_at": T0,
            "outcome": "SUBMITTED",
            "credits": 0.5,
        }
    )
    outs = ms_.process(send) + ms_.flush_partials(99)
    internal = [o for o in outs if o.kind in (PHONE_EVENT, CAMPAIGN_EVENT)]
    assert [type(o.value) for o in internal] == [SendIndexed, MessagePartial]
    assert internal[0].value == SendIndexed(PHONE, "m1", "c1", T0)
    partial = internal[1].value
    assert partial == MessagePartial(
        "c1",
        2,
        MessageVersion(1, 0, T0),
        # no provider nor operator in the send: "unknown" (contract §11)
        MessageCounts(
            1, 0, {}, {"PENDING": 1}, 500_000, T0, T0, {}, {"unknown": {"PENDING": 1}}, {"unknown": {"PENDING": 1}}
        ),
        99,
    )
    assert all(isinstance(o.value, dict) for o in outs if o not in internal)  # Avro outputs stay dicts

    ps = PhoneStage(1, {})
    ps.index_send(PHONE, "c1", "m1", T0)
    u = Unsubscribe.from_record(
        {"event_id": "u1", "phone": PHONE, "action": "UNSUBSCRIBE", "channel": "STOP_KEYWORD", "at": T0 + 1}
    )
    ps.process_unsubscribe(u)
    unsub_partials = [o.value for o in ps.flush_partials(100)]
    assert unsub_partials == [UnsubscribePartial("c1", 1, UnsubscribeVersion(1), 1, T0 + 1, 100)]
    # and the campaign stage folds them as they come off the log
    state = None
    for off, ev in enumerate([partial, *unsub_partials]):
        state = campaign_stage.fold(state, "c1", records.decode_campaign_event(records.encode_internal(ev)), off)
    assert state is not None and set(state.parts) == {Slot(Source.MESSAGES, 2), Slot(Source.UNSUBSCRIBES, 1)}
    s = campaign_stage.stats(state)
    assert (s["sent"], s["unsubscribed"], s["credits"], s["version"]) == (1, 1, 0.5, 2)
