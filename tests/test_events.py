"""Contract §3 and §8: validation of decoded records, and phone normalization."""

from __future__ import annotations

import pytest
from driving import NAMES, decoded, driver, feed, latest
from hypothesis import given
from hypothesis import strategies as st
from strategies import E164_POOL, INVALID_PHONES, PHONE_OF, T0, phone_renderings, receipts, sends

from processors.events import (
    MAX_ID_LEN,
    CampaignLaunched,
    DeliveryReceipt,
    InvalidEvent,
    MessageSent,
    Unsubscribe,
)
from processors.phones import mask, normalize

KINDS = {"missing_id", "missing_field", "invalid_field", "invalid_timestamp", "absurd_timestamp", "unknown_enum"}


def good(kind: str) -> dict:
    return {
        "send": {
            "event_id": "e1",
            "campaign_id": "c1",
            "message_id": "m1",
            "phone": "+33612345678",
            "sent_at": T0,
            "outcome": "SUBMITTED",
            "segments": 1,
            "credits": 0.5,
        },
        "dlr": {
            "event_id": "e2",
            "message_id": "m1",
            "campaign_id": None,
            "provider": "smpp",
            "status": "DELIVRD",
            "error_code": None,
            "done_at": None,
            "received_at": T0,
        },
        "unsub": {
            "event_id": "e3",
            "phone": "+33612345678",
            "action": "UNSUBSCRIBE",
            "channel": "STOP_KEYWORD",
            "at": T0,
        },
        "launch": {
            "event_id": "e4",
            "campaign_id": "c1",
            "name": "n",
            "kind": "BATCH",
            "text": "t",
            "sender_id": "s",
            "sms_type": "marketing",
            "created_at": T0,
            "launched_at": T0,
            "launch_list_size": 3,
        },
    }[kind]


PARSE = {
    "send": MessageSent.from_record,
    "dlr": DeliveryReceipt.from_record,
    "unsub": Unsubscribe.from_record,
    "launch": CampaignLaunched.from_record,
}


def rejects(rtype: str, expected_kind: str, field: str, /, **changes) -> InvalidEvent:
    rec = {**good(rtype), **changes}
    for k, v in changes.items():
        if v is _DROP:
            del rec[k]
    with pytest.raises(InvalidEvent) as info:
        PARSE[rtype](rec)
    exc = info.value
    assert exc.kind == expected_kind
    assert exc.kind in KINDS
    assert field in exc.reason and str(exc) == exc.reason  # readable: names the field
    return exc


_DROP = object()


@pytest.mark.parametrize("kind", list(PARSE))
def test_valid_records_parse(kind):
    PARSE[kind](good(kind))


@pytest.mark.parametrize(
    "kind,field",
    [
        ("send", "event_id"),
        ("send", "campaign_id"),
        ("send", "message_id"),
        ("send", "phone"),
        ("dlr", "event_id"),
        ("dlr", "message_id"),
        ("unsub", "event_id"),
        ("unsub", "phone"),
        ("launch", "event_id"),
        ("launch", "campaign_id"),
    ],
)
@pytest.mark.parametrize("bad", [_DROP, None, "", "   ", 42])
def test_missing_or_empty_ids_are_rejected(kind, field, bad):
    rejects(kind, "missing_id", field, **{field: bad})


def test_the_event_id_is_reported_when_known():
    exc = rejects("send", "missing_id", "message_id", message_id="")
    assert exc.event_id == "e1"


def test_empty_status_is_rejected():
    rejects("dlr", "missing_field", "status", status=" ")
    rejects("dlr", "missing_field", "status", status=_DROP)


@pytest.mark.parametrize(
    "kind,field",
    [
        ("send", "sent_at"),
        ("dlr", "received_at"),
        ("dlr", "done_at"),
        ("unsub", "at"),
        ("launch", "created_at"),
        ("launch", "launched_at"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        1_700_000_000,  # seconds instead of milliseconds
        1_700_000_000_000_000,  # microseconds
        32_503_680_000_000,  # year 3000
        946_684_799_999,  # just before 2000
        4_102_444_800_000,  # 2100-01-01: first rejected
    ],
)
def test_absurd_timestamps_are_rejected(kind, field, value):
    exc = rejects(kind, "absurd_timestamp", field, **{field: value})
    assert "millisecond" in exc.reason


@pytest.mark.parametrize("value", ["1700000000000", 1.7e12, True, [T0]])
def test_timestamps_must_be_integers(value):
    rejects("send", "invalid_timestamp", "sent_at", sent_at=value)
    rejects("unsub", "invalid_timestamp", "at", at=value)


def test_timestamp_bounds_are_inclusive_exclusive():
    MessageSent.from_record({**good("send"), "sent_at": 946_684_800_000})
    MessageSent.from_record({**good("send"), "sent_at": 4_102_444_799_999})
    assert DeliveryReceipt.from_record(good("dlr")).done_at is None  # optional


@pytest.mark.parametrize(
    "kind,field,value",
    [
        ("send", "outcome", "UNKNOWN"),  # the Avro reader's default symbol: dead-lettered
        ("send", "outcome", "submitted"),
        ("send", "outcome", None),
        ("unsub", "action", "UNKNOWN"),
        ("unsub", "action", "MAYBE"),
        ("unsub", "channel", "SMS"),
        ("launch", "kind", "WEIRD"),
    ],
)
def test_unknown_enum_values_are_rejected(kind, field, value):
    exc = rejects(kind, "unknown_enum", field, **{field: value})
    assert repr(value) in exc.reason


@pytest.mark.parametrize(
    "kind,field",
    [
        ("send", "event_id"),
        ("send", "message_id"),
        ("send", "campaign_id"),
        ("send", "contact_id"),
        ("dlr", "message_id"),
        ("dlr", "campaign_id"),
        ("unsub", "event_id"),
        ("unsub", "contact_id"),
        ("unsub", "campaign_id"),
        ("launch", "campaign_id"),
    ],
)
def test_oversized_ids_are_rejected(kind, field):
    PARSE[kind]({**good(kind), field: "x" * MAX_ID_LEN})  # at the limit: fine
    rejects(kind, "invalid_field", field, **{field: "x" * (MAX_ID_LEN + 1)})


@pytest.mark.parametrize("field", ["status", "error_code"])
def test_oversized_receipt_strings_are_rejected(field):
    rejects("dlr", "invalid_field", field, **{field: "E" * (MAX_ID_LEN + 1)})


@pytest.mark.parametrize(
    "rtype,field,size",
    [
        ("send", "phone", 1_000),
        ("unsub", "phone", 1_000),
        ("unsub", "text", 100_000),
        ("launch", "text", 100_000),
        ("launch", "name", 100_000),
        ("send", "provider", 1_000),
    ],
)
def test_oversized_strings_are_rejected(rtype, field, size):
    rejects(rtype, "invalid_field", field, **{field: "7" * size})


@pytest.mark.parametrize("code", [5, 1.0, ["1"]])
def test_a_non_string_error_code_is_an_invalid_event_not_a_crash(code):
    rejects("dlr", "invalid_field", "error_code", error_code=code)


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"segments": -1}, "segments"),
        ({"segments": "2"}, "segments"),
        ({"credits": -0.01}, "credits"),
        ({"credits": float("nan")}, "credits"),
        ({"credits": float("inf")}, "credits"),
        ({"credits": "1"}, "credits"),
    ],
)
def test_invalid_counts_are_rejected(changes, field):
    rejects("send", "invalid_field", field, **changes)


def test_invalid_launch_list_size_is_rejected():
    rejects("launch", "invalid_field", "launch_list_size", launch_list_size=-1)
    rejects("launch", "invalid_field", "launch_list_size", launch_list_size="3")


def test_defaults_and_optional_fields():
    s = MessageSent.from_record({k: v for k, v in good("send").items() if k not in ("segments", "credits")})
    assert (s.segments, s.credits, s.contact_id, s.not_sent_reason) == (1, 0.0, None, None)
    ns = MessageSent.from_record({**good("send"), "outcome": "NOT_SENT"})
    assert ns.not_sent_reason == "OTHER"  # a NOT_SENT without reason is counted under OTHER
    ns = MessageSent.from_record({**good("send"), "outcome": "NOT_SENT", "not_sent_reason": "OPTED_OUT"})
    assert ns.not_sent_reason == "OPTED_OUT"
    r = DeliveryReceipt.from_record({**good("dlr"), "provider": "Twilio", "campaign_id": "  ", "done_at": T0 - 5})
    assert (r.provider, r.campaign_id, r.carrier_time, r.event_time) == ("twilio", None, T0 - 5, T0)
    u = Unsubscribe.from_record({**good("unsub"), "campaign_id": "", "contact_id": None})
    assert (u.campaign_id, u.contact_id, u.event_time) == (None, None, T0)


@given(sends(message_id="m1"))
def test_generated_sends_are_valid(rec):
    s = MessageSent.from_record(rec)
    assert s.phone == PHONE_OF[rec["phone"]]


@given(receipts())
def test_generated_receipts_are_valid(rec):
    DeliveryReceipt.from_record(rec)


# --- phones -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "0612345678",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "+33 6 12 34 56 78",
        "0033612345678",
        "+33612345678",
        " +33612345678 ",
    ],
)
def test_french_formats_normalize_to_e164(raw):
    assert normalize(raw, "FR") == ("+33612345678", True)
    assert MessageSent.from_record({**good("send"), "phone": raw}).phone == "+33612345678"
    u = Unsubscribe.from_record({**good("unsub"), "phone": raw})
    assert (u.phone, u.phone_valid) == ("+33612345678", True)


def test_the_default_region_is_configurable():
    assert normalize("020 7946 0958", "GB") == ("+442079460958", True)
    assert MessageSent.from_record({**good("send"), "phone": "020 7946 0958"}, region="GB").phone == "+442079460958"


@pytest.mark.parametrize("raw", ["not-a-phone", "12", "++--", "phone: call me", " 12 "])
def test_unparseable_phones_are_kept_and_flagged(raw):
    phone, valid = normalize(raw, "FR")
    assert (phone, valid) == (raw.strip(), False)
    s = MessageSent.from_record({**good("send"), "phone": raw})
    assert (s.phone, s.phone_valid) == (raw.strip(), False)


def test_a_send_to_an_unparseable_phone_still_counts():
    t = driver(2)
    feed(t, "sms.message-sent", {**good("send"), "phone": "not-a-phone"})
    feed(
        t,
        "sms.message-sent",
        {**good("send"), "event_id": "e9", "message_id": "m2", "outcome": "NOT_SENT", "phone": "12"},
    )
    t.drain()
    st_ = latest(t, NAMES.campaign_stats)["c1"]
    assert (st_["sent"], st_["not_sent"], st_["status_counts"]) == (1, 1, {"PENDING": 1, "NOT_SENT": 1})
    assert decoded(t, NAMES.dead_letter) == []


@given(phone_renderings(E164_POOL + INVALID_PHONES))
def test_every_rendering_normalizes_to_one_key(raw):
    phone, valid = normalize(raw, "FR")
    assert phone == PHONE_OF[raw]
    assert valid == (phone not in INVALID_PHONES)


@given(st.one_of(st.text(max_size=30), st.text("+0123456789 ٠١٢٣٦٧٨０３６", max_size=16)))
def test_normalize_never_raises_and_never_drops(raw):
    phone, valid = normalize(raw, "FR")
    if valid:  # E.164: ASCII digits only, or two renderings of one person would be two keys
        assert phone.startswith("+") and phone[1:].isascii() and phone[1:].isdigit() and len(phone) <= 16
    else:
        assert phone == raw.strip()


@pytest.mark.parametrize("raw", ["+٣٣٦١٢٣٤٥٦٧٨", "٠٦١٢٣٤٥٦٧٨", "+３３６１２３４５６７８", "＋３３６１２３４５６７８"])
def test_non_ascii_digits_normalize_to_the_same_key(raw):
    assert normalize(raw, "FR") == ("+33612345678", True)


def test_mask_hides_the_middle():
    assert mask("+33612345678") == "+33*******78"
    assert mask(None) == "<none>" and mask("123") == "***"
