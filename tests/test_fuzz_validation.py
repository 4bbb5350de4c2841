"""Fuzzing the codec and the validation as one function (contract §8).

``classify(topic, raw)`` (tests/badinput.py) is what the worker does with every input
record before any fold: decode with the topic's record, then validate. The properties:

* it never raises anything but DecodeError / InvalidEvent (turned into dead letters), for
  arbitrary bytes and for valid encodings mutated (bit flips, cuts, insertions, splices of
  other valid records, absurd varints);
* what it accepts satisfies the contract, and what it rejects breaks it, with a kind the
  contract's rules (restated independently in ``badinput.contract_problems``) give;
* every valid record round-trips through the codec and is accepted;
* every reason is a sentence a person can act on, and never prints a phone number.

Bounded for CI; ``SMSTALLY_FUZZ_EXAMPLES=N`` sets the examples per property (the soak,
scripts/fuzz_soak.py, runs >= 10 000).
"""

from __future__ import annotations

import os
import random
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import DECODE_ERROR_KINDS, fingerprint
from tests import badinput as B

EXAMPLES = int(os.environ.get("SMSTALLY_FUZZ_EXAMPLES", "300"))
settings.register_profile(
    "smstally-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ = settings(settings.get_profile("smstally-fuzz"))

VALIDATION_KINDS = (
    "missing_id",
    "missing_field",
    "invalid_field",
    "absurd_timestamp",
    "invalid_timestamp",
    "unknown_enum",
)
KINDS = frozenset(DECODE_ERROR_KINDS) | frozenset(VALIDATION_KINDS)
TOPICS = st.sampled_from(B.INPUT_TOPICS)


# -- strategies -------------------------------------------------------------------------

SAFE = st.characters(exclude_categories=("Cs",))  # a lone surrogate cannot be written as UTF-8


def short_text(min_size: int = 0, max_size: int = 16) -> st.SearchStrategy[str]:
    return st.text(SAFE, min_size=min_size, max_size=max_size)


def around(limit: int) -> st.SearchStrategy[str]:
    """Strings of exactly limit-1 .. limit+2 characters, ASCII or not."""
    return st.builds(lambda n, c: c * n, st.integers(limit - 1, limit + 2), st.sampled_from(["a", "é", "😀", "7"]))


GOOD_ID = st.one_of(short_text(1, 24).filter(str.strip), st.just("i" * B.MAX_ID))
ANY_ID = st.one_of(GOOD_ID, st.sampled_from(["", " ", "\t\n"]), around(B.MAX_ID))
GOOD_TS = st.integers(B.MIN_TS, B.MAX_TS - 1)
ANY_TS = st.one_of(
    GOOD_TS,
    st.sampled_from(sorted(B.ABSURD_TIMESTAMPS.values()) + [B.MIN_TS, B.MAX_TS - 1]),
    st.integers(-(2**63), 2**63 - 1),
)
MOBILES = st.integers(0, 10**8 - 1).map(lambda n: f"+336{n:08d}")


def renderings(e164: str) -> list[str]:
    d = "0" + e164[3:]
    return [
        e164,
        d,
        f"{d[0:2]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:10]}",
        f"{d[0:2]}.{d[2:4]}.{d[4:6]}.{d[6:8]}.{d[8:10]}",
        f"+33 {e164[3]} {e164[4:6]} {e164[6:8]} {e164[8:10]} {e164[10:12]}",
        f"0033{e164[3:]}",
    ]


PHONES = st.one_of(
    MOBILES.flatmap(lambda p: st.sampled_from(renderings(p))),
    st.sampled_from(B.UNPARSEABLE_PHONES),
    short_text(1, B.MAX_PHONE).filter(str.strip),
)
ANY_PHONE = st.one_of(PHONES, st.sampled_from(["", "  "]), around(B.MAX_PHONE))


def opt(s: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), s)


def records(topic: str, valid: bool) -> st.SearchStrategy[dict]:
    """Records of ``topic`` the schema accepts: all valid, or with any field at or past a limit."""
    i = GOOD_ID if valid else ANY_ID
    t = GOOD_TS if valid else ANY_TS
    label = short_text(0, 24) if valid else st.one_of(short_text(0, 24), around(B.MAX_ID))
    free = short_text(0, 64) if valid else st.one_of(short_text(0, 64), around(B.MAX_TEXT))
    phone = PHONES if valid else ANY_PHONE
    if topic == B.CAMPAIGNS:
        return st.fixed_dictionaries(
            {
                "event_id": i,
                "campaign_id": i,
                "name": free,
                "kind": st.sampled_from(["BATCH", "AUTOMATED", "OTHER"]),
                "text": free,
                "sender_id": label,
                "sms_type": label,
                "created_at": t,
                "launched_at": t,
                "launch_list_size": st.integers(0, 10**7) if valid else st.integers(-(2**63), 2**63 - 1),
            }
        )
    if topic == B.MESSAGE_SENT:
        outcomes = ["SUBMITTED", "PROVIDER_ERROR", "NOT_SENT"] + ([] if valid else ["UNKNOWN"])
        return st.fixed_dictionaries(
            {
                "event_id": i,
                "campaign_id": i,
                "message_id": i,
                "contact_id": opt(i) if not valid else st.one_of(st.none(), st.just(""), GOOD_ID),
                "phone": phone,
                "sent_at": t,
                "outcome": st.sampled_from(outcomes),
                "not_sent_reason": opt(
                    st.sampled_from(
                        ["HARD_BOUNCE", "OPTED_OUT", "INVALID_NUMBER", "INSUFFICIENT_CREDIT", "DUPLICATE", "OTHER"]
                    )
                ),
                "segments": st.integers(0, 20) if valid else st.integers(-(2**31), 2**31 - 1),
                "credits": (
                    st.floats(0, 1e8, allow_nan=False)
                    if valid
                    else st.one_of(st.floats(0, 1e8), st.floats(allow_nan=True, allow_infinity=True))
                ),
                "provider": opt(label),
                "country": opt(label),
                "operator": opt(label),
            }
        )
    if topic == B.DLR:
        return st.fixed_dictionaries(
            {
                "event_id": i,
                "message_id": i,
                "campaign_id": opt(i) if not valid else st.one_of(st.none(), GOOD_ID),
                "provider": opt(label),
                "status": (
                    short_text(1, 12).filter(str.strip) if valid else st.one_of(short_text(0, 12), around(B.MAX_ID))
                ),
                "error_code": opt(label),
                "done_at": opt(t),
                "received_at": t,
            }
        )
    return st.fixed_dictionaries(
        {
            "event_id": i,
            "phone": phone,
            "contact_id": opt(i) if not valid else st.one_of(st.none(), GOOD_ID),
            "campaign_id": opt(i) if not valid else st.one_of(st.none(), GOOD_ID),
            "action": st.sampled_from(["UNSUBSCRIBE", "RESUBSCRIBE"] + ([] if valid else ["UNKNOWN"])),
            "channel": st.sampled_from(["LINK", "STOP_KEYWORD", "MANUAL", "COMPLAINT", "OTHER"]),
            "text": opt(free),
            "at": t,
        }
    )


@st.composite
def topic_and_record(draw, valid: bool) -> tuple[str, dict]:
    topic = draw(TOPICS)
    return topic, draw(records(topic, valid))


FRAMINGS = st.one_of(st.just(None), st.integers(0, 2**32 - 1))  # None: single-object; else a Confluent id


def frame(topic: str, rec: dict, schema_id: int | None) -> bytes:
    name = B.RECORD_OF[topic]
    return B.encode(name, rec) if schema_id is None else B.confluent(schema_id, B.body(name, rec))


_rng = random.Random(0)
SPLICES = [B.encode(B.RECORD_OF[t], B.valid_record(t, _rng)) for t in B.INPUT_TOPICS]
SPLICES += [it.value for it in B.wrong_record_types(B.DLR, 0)[3:]]  # the output records
SPLICES += [s[10:] for s in SPLICES]  # bodies without their header

MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**16)),
    st.tuples(st.just("cut"), st.integers(0, 2**16)),
    st.tuples(st.just("insert"), st.integers(0, 2**16), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("splice"), st.integers(0, 2**16), st.sampled_from(SPLICES)),
    st.tuples(st.just("delete"), st.integers(0, 2**16), st.integers(1, 16)),
    st.tuples(st.just("set"), st.integers(0, 2**16), st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF])),
    st.tuples(
        st.just("varint"),
        st.integers(0, 2**16),
        st.sampled_from([-1, -(2**63), 2**31, 2**62, 2**63 - 1, 10**9]).map(B.long_zigzag),
    ),
    st.tuples(
        st.just("header"),
        st.sampled_from(
            [b"\xc3\x01" + fingerprint(n) for n in B.RECORD_OF.values()]
            + [b"\x00\x00\x00\x00\x01", b"\xc3\x01" + bytes(8), b"\xc3", b""]
        ),
    ),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    for m in mutations:
        n = len(data)
        at = m[1] % (n + 1) if isinstance(m[1], int) else 0
        if m[0] == "flip" and n:
            data = B.flip_bits(data, [m[1]])
        elif m[0] == "cut":
            data = data[:at]
        elif m[0] in ("insert", "splice", "varint"):
            data = data[:at] + m[2] + data[at:]
        elif m[0] == "delete":
            data = data[:at] + data[at + m[2] :]
        elif m[0] == "set" and n:
            data = data[: at % n] + bytes([m[2]]) + data[at % n + 1 :]
        elif m[0] == "header":
            head = 10 if data[:2] == b"\xc3\x01" else 5 if data[:1] == b"\x00" else 0
            data = m[1] + data[head:]
    return data


# -- the checks every input goes through ------------------------------------------------


def assert_sentence(reason: str) -> None:
    assert isinstance(reason, str) and reason == reason.strip(), repr(reason)
    assert 10 <= len(reason) <= 1000, repr(reason)
    assert reason[0].isalpha() and " " in reason and "\n" not in reason, repr(reason)


def check(topic: str, raw: bytes | None) -> B.Outcome:
    """classify + the properties every outcome must have; any other exception fails the test."""
    out = B.classify(topic, raw)
    if out.outcome == B.DEAD_LETTER:
        assert out.kind in KINDS, out
        assert_sentence(out.reason)
    if out.record is not None:  # decoded: the verdict must be the contract's
        problems = B.contract_problems(topic, out.record)
        if out.outcome == B.ACCEPTED:
            assert not problems, f"accepted a record that breaks the contract ({problems}): {out.record!r:.300}"
        else:
            assert out.kind in problems, f"{out.kind} ({out.reason}) but the contract says {problems or 'fine'}"
    return out


# -- deterministic: the generator's bad records ------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_generated_bad_records_have_their_expected_outcome(seed):
    items = B.bad_records(seed)
    assert len(items) > 300 and {it.topic for it in items} == set(B.INPUT_TOPICS)
    for it in items:
        out = check(it.topic, it.value)
        assert (out.outcome, out.kind) == (it.outcome, it.kind), f"{it}: {out.kind}: {out.reason}"
    assert B.bad_records(seed) == items, "generators must be deterministic by seed"


def test_unparseable_phones_are_accepted_kept_and_flagged():
    for it in B.accepted(0):
        if "message" not in it.effect:
            continue
        out = check(it.topic, it.value)
        assert out.outcome == B.ACCEPTED
        assert (out.event.phone, out.event.phone_valid) == (it.effect["message"][1], False)


# -- properties ---------------------------------------------------------------------------


@FUZZ
@given(tr=topic_and_record(valid=True), schema_id=FRAMINGS)
def test_valid_records_round_trip_and_are_accepted(tr, schema_id):
    topic, rec = tr
    raw = frame(topic, rec, schema_id)
    out = check(topic, raw)
    assert out.outcome == B.ACCEPTED, out.reason
    assert out.record == {**rec, **({"credits": float(rec["credits"])} if "credits" in rec else {})}
    ev = out.event
    assert ev.event_id == rec["event_id"]
    for f in ("campaign_id", "message_id", "launched_at", "sent_at", "received_at", "at", "outcome", "action"):
        if f in rec and rec[f] is not None:
            assert getattr(ev, f) == rec[f], f


@FUZZ
@given(tr=topic_and_record(valid=True), schema_id=FRAMINGS)
def test_every_cut_of_a_valid_value_is_truncated(tr, schema_id):
    topic, rec = tr
    raw = frame(topic, rec, schema_id)
    assert check(topic, raw[:0]).kind == "empty"
    for cut in range(1, len(raw), max(1, len(raw) // 64)):
        out = check(topic, raw[:cut])
        assert out.kind == "truncated", f"cut at {cut}/{len(raw)}: {out.kind}: {out.reason}"


@FUZZ
@given(
    topic=TOPICS,
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda n, b: b"\xc3\x01" + fingerprint(n) + b,
            st.sampled_from(list(B.RECORD_OF.values())),
            st.binary(max_size=300),
        ),
        st.builds(lambda i, b: b"\x00" + i.to_bytes(4, "big") + b, st.integers(0, 2**32 - 1), st.binary(max_size=300)),
        st.none(),
    ),
)
def test_arbitrary_bytes_are_only_ever_dead_letters(topic, data):
    check(topic, data)


@FUZZ
@given(
    tr=st.booleans().flatmap(lambda valid: topic_and_record(valid=valid)),
    schema_id=FRAMINGS,
    mutations=st.lists(MUTATION, min_size=1, max_size=3),
)
def test_mutated_encodings_are_only_ever_dead_letters_or_contract_abiding(tr, schema_id, mutations):
    topic, rec = tr
    check(topic, mutate(frame(topic, rec, schema_id), mutations))


@FUZZ
@given(tr=topic_and_record(valid=False), schema_id=FRAMINGS)
def test_validation_accepts_exactly_what_the_contract_allows(tr, schema_id):
    topic, rec = tr
    out = check(topic, frame(topic, rec, schema_id))
    assert out.record is not None, out.reason  # every schema-valid record decodes
    assert (out.outcome == B.ACCEPTED) == (not B.contract_problems(topic, rec))


# -- reasons: actionable, and no phone number in full -----------------------------------

_DIGITS = st.text(string.digits, min_size=8, max_size=8)
_ENUMS = {"kind", "outcome", "not_sent_reason", "action", "channel"}


@st.composite
def records_full_of_phones(draw) -> tuple[str, dict, set[str]]:
    """A record, usually broken, with phone numbers in its phone and in any string field."""
    topic = draw(TOPICS)
    rec = draw(records(topic, valid=False))
    e164 = "+336" + draw(_DIGITS)
    forms = renderings(e164)
    shown = set()
    for f, v in list(rec.items()):
        if isinstance(v, str) and f not in _ENUMS and draw(st.booleans()):
            p = draw(st.sampled_from(forms))
            rec[f] = draw(st.sampled_from([p, f"STOP {p}", p * 30, p + " " * 300]))
            shown.add(p)
    if "phone" in rec:
        rec["phone"] = draw(st.sampled_from(forms + [f" {forms[2]} ", forms[0] + "x" * 60]))
        shown.add(rec["phone"].strip())
    return topic, rec, {s for s in shown if sum(c.isdigit() for c in s) >= 8} | {e164, e164[1:], "0" + e164[3:]}


@FUZZ
@given(trs=records_full_of_phones(), schema_id=FRAMINGS, mutations=st.lists(MUTATION, max_size=2))
def test_reasons_are_sentences_that_never_print_a_phone_number(trs, schema_id, mutations):
    topic, rec, phones = trs
    for raw in (frame(topic, rec, schema_id), mutate(frame(topic, rec, schema_id), mutations)):
        out = check(topic, raw)
        if out.outcome == B.DEAD_LETTER:
            for p in phones:
                assert p not in out.reason, f"the reason prints a phone number: {out.reason}"


def test_generated_reasons_are_sentences_without_phone_numbers():
    for it in B.bad_records(5):
        out = check(it.topic, it.value)
        if out.outcome == B.DEAD_LETTER:
            assert "+336" not in out.reason and "+33 6" not in out.reason, out.reason
