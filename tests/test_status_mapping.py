"""Contract §4: raw receipts -> canonical statuses, and the status catalog itself."""

from __future__ import annotations

import json

import oracle
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import error_codes, providers, raw_statuses

from processors import catalog
from processors.status_mapping import StatusMapper, parse_code

M = StatusMapper()

# --- the first table, row by row ----------------------------------------------------------
PENDING_ROW = (
    [("smpp", s) for s in ("ENROUTE", "ACCEPTD", "SCHEDULED", "BUFFRED")]
    + [("twilio", s) for s in ("queued", "accepted", "scheduled", "sending", "sent")]
    + [("vonage", s) for s in ("accepted", "buffered")]
    + [("infobip", "PENDING")]
)
DELIVERED_ROW = [
    ("smpp", "DELIVRD"),
    ("twilio", "delivered"),
    ("twilio", "read"),
    ("vonage", "delivered"),
    ("infobip", "DELIVERED"),
]
SOFT_ROW = [("smpp", "EXPIRED"), ("vonage", "expired"), ("infobip", "EXPIRED")]
FAILURE_ROW = [("smpp", s) for s in ("UNDELIV", "REJECTD", "DELETED", "FAILED")] + [
    ("twilio", "undelivered"),
    ("twilio", "failed"),
    ("vonage", "failed"),
    ("vonage", "rejected"),
    ("infobip", "UNDELIVERABLE"),
    ("infobip", "REJECTED"),
]
UNKNOWN_ROW = [("smpp", "UNKNOWN"), ("vonage", "unknown")]


@pytest.mark.parametrize("provider,raw", PENDING_ROW)
def test_pending_row(provider, raw):
    assert M.map(provider, raw, None) == catalog.PENDING


@pytest.mark.parametrize("provider,raw", DELIVERED_ROW)
def test_delivered_row(provider, raw):
    assert M.map(provider, raw, None) == catalog.DELIVERED


@pytest.mark.parametrize("provider,raw", SOFT_ROW)
def test_expired_is_soft_bounce(provider, raw):
    # Even with a code that would be permanent on a failure: expiry is not a failure row.
    assert M.map(provider, raw, None) == catalog.SOFT_BOUNCE
    assert M.map(provider, raw, "1") == catalog.SOFT_BOUNCE


@pytest.mark.parametrize("provider,raw", UNKNOWN_ROW)
def test_unknown_row(provider, raw):
    assert M.map(provider, raw, None) == catalog.UNKNOWN


@pytest.mark.parametrize("raw", ["whatever", "OK", "DELIVERD", "bounced", "ÉCHEC", "42"])
@pytest.mark.parametrize("provider", [None, "smpp", "twilio", "acme"])
def test_unrecognized_is_unknown(provider, raw):
    assert M.map(provider, raw, None) == catalog.UNKNOWN
    assert M.map(provider, raw, "1") == catalog.UNKNOWN  # a code only matters on a failure


@pytest.mark.parametrize("provider,raw", FAILURE_ROW)
def test_failure_without_permanent_code_is_soft_bounce(provider, raw):
    for code in (None, "", "  ", "abc", "1.0", "0x1", "99999", "-", "+"):
        assert M.map(provider, raw, code) == catalog.SOFT_BOUNCE, code


# --- the second table ----------------------------------------------------------------------
PERMANENT = {
    "smpp": [1, 9, 11, 12],
    None: [1, 9, 11, 12],
    "infobip": [1, 9, 11, 12],  # listed in the first table, not in the second: "any provider not listed"
    "acme": [1, 9, 11, 12],
    "twilio": [30005, 30006],
    "vonage": [3, 4],
    "smsmode": list(range(3520, 3530)),
}
FAILURE_WORD = {
    "smpp": "UNDELIV",
    None: "UNDELIV",
    "infobip": "UNDELIVERABLE",
    "acme": "FAILED",
    "twilio": "failed",
    "vonage": "rejected",
    "smsmode": "REJECTD",
}


@pytest.mark.parametrize("provider", list(PERMANENT))
def test_permanent_codes_per_provider(provider):
    raw = FAILURE_WORD[provider]
    for code in PERMANENT[provider]:
        assert M.map(provider, raw, str(code)) == catalog.HARD_BOUNCE, code
        assert M.map(provider, raw, str(code).zfill(6)) == catalog.HARD_BOUNCE, code  # "001" == 1
        assert M.map(provider, raw, f" {code} ") == catalog.HARD_BOUNCE, code
    everything_permanent = {c for cs in PERMANENT.values() for c in cs}
    for code in sorted(everything_permanent - set(PERMANENT[provider])) + [0, 2, 10, 13, 3519, 3530, 30007]:
        assert M.map(provider, raw, str(code)) == catalog.SOFT_BOUNCE, code


def test_codes_with_leading_zeros_equal_their_integer():
    assert parse_code("001") == 1 == parse_code("1") == parse_code("0001")
    assert M.map("smpp", "UNDELIV", "001") == M.map("smpp", "UNDELIV", "1") == catalog.HARD_BOUNCE
    assert M.map("vonage", "failed", "0003") == catalog.HARD_BOUNCE


@pytest.mark.parametrize("raw", [None, "", " ", "abc", "1a", "1.0", "1e3", "0x1", "¹", "²", "١", "one"])
def test_non_numeric_codes_read_as_no_code(raw):
    assert parse_code(raw) is None
    assert M.map("smpp", "UNDELIV", raw) == catalog.SOFT_BOUNCE


@given(st.text(max_size=8))
def test_parse_code_never_raises_and_reads_only_ascii_decimals(raw):
    got = parse_code(raw)
    t = raw.strip()
    body = t[1:] if t[:1] in "+-" and t else t
    if body and all(c in "0123456789" for c in body):
        assert got == int(t)
    else:
        assert got is None
    # and a failure with any such code maps without raising
    assert M.map("smpp", "FAILED", raw) in (catalog.HARD_BOUNCE, catalog.SOFT_BOUNCE)


@given(st.integers(0, 10**6), st.integers(0, 5))
def test_code_is_a_decimal_integer_whatever_its_zero_padding(code, pad):
    assert parse_code("0" * pad + str(code)) == code


# --- case, canonical names, provider names ---------------------------------------------------
@pytest.mark.parametrize(
    "provider,raw,expected",
    [
        ("smpp", "delivrd", catalog.DELIVERED),
        ("smpp", "Delivrd", catalog.DELIVERED),
        ("twilio", "DELIVERED", catalog.DELIVERED),
        ("twilio", "Queued", catalog.PENDING),
        ("infobip", "undeliverable", catalog.SOFT_BOUNCE),
        ("vonage", "EXPIRED", catalog.SOFT_BOUNCE),
        ("TWILIO", "Failed", catalog.SOFT_BOUNCE),
        ("smpp", " DELIVRD ", catalog.DELIVERED),
    ],
)
def test_vocabularies_are_case_insensitive(provider, raw, expected):
    assert M.map(provider, raw, None) == expected


@pytest.mark.parametrize("provider", ["TWILIO", "Twilio", "twilio"])
def test_provider_names_are_case_insensitive_for_codes(provider):
    assert M.map(provider, "failed", "30005") == catalog.HARD_BOUNCE
    assert M.map(provider, "failed", "1") == catalog.SOFT_BOUNCE


@pytest.mark.parametrize("name", [s for s in catalog.STATUSES if s != catalog.NOT_SENT])
@pytest.mark.parametrize("provider", [None, "smpp", "twilio", "vonage", "infobip", "smsmode", "acme"])
def test_canonical_names_map_to_themselves(name, provider):
    for raw in (name, name.lower(), name.title()):
        assert M.map(provider, raw, None) == name
        assert M.map(provider, raw, "1") == name  # a canonical name is already decided


def test_a_receipt_saying_not_sent_is_a_provider_error():
    # Documented choice (status_mapping.py): only a MessageSent makes a message NOT_SENT.
    assert M.map(None, "NOT_SENT", None) == catalog.PROVIDER_ERROR
    assert M.map("twilio", "not_sent", None) == catalog.PROVIDER_ERROR


@given(providers, raw_statuses, error_codes)
def test_mapper_agrees_with_the_contract_tables(provider, raw, code):
    assert M.map(provider, raw, code) == oracle.canonical(provider, raw, code)


# --- the catalog (§4's status table) ---------------------------------------------------------
def test_catalog_is_the_contract_table():
    table = {
        "PENDING": ("waiting", False),
        "PROVIDER_ACCEPTED": ("receipt", True),
        "DELIVERED": ("receipt", True),
        "SOFT_BOUNCE": ("temporary_error", True),
        "PROVIDER_ERROR": ("temporary_error", True),
        "HARD_BOUNCE": ("permanent_error", True),
        "UNKNOWN": ("unknown", True),
        "NOT_SENT": ("not_sent", True),
    }
    assert {s: (catalog.category(s), catalog.is_final(s)) for s in catalog.STATUSES} == table
    assert catalog.STATUSES["DELIVERED"].emarsys == "Delivery successful"
    assert catalog.STATUSES["PENDING"].smsmode == "Waiting"
    order = sorted(catalog.TIE_RANK, key=catalog.TIE_RANK.get, reverse=True)
    assert order == ["HARD_BOUNCE", "DELIVERED", "SOFT_BOUNCE", "UNKNOWN", "PROVIDER_ACCEPTED", "PROVIDER_ERROR"]


# --- extension without code changes -----------------------------------------------------------
def _write(tmp_path, data) -> str:
    p = tmp_path / "extra.json"
    p.write_text(json.dumps(data))
    return str(p)


def test_extension_file_adds_a_provider_vocabulary_and_codes(tmp_path):
    path = _write(
        tmp_path,
        {
            "vocabularies": {"Acme": {"OK": "DELIVERED", "WAIT": "PENDING", "DEAD": "FAILURE", "GONE": "HARD_BOUNCE"}},
            "permanent_codes": {"ACME": [42, [100, 102]]},
        },
    )
    before = StatusMapper.from_env({})
    assert before.map("acme", "ok", None) == catalog.UNKNOWN
    m = StatusMapper.from_env({"SMSTALLY_STATUS_MAP": path})
    assert m.map("acme", "ok", None) == catalog.DELIVERED
    assert m.map("ACME", "Wait", None) == catalog.PENDING
    assert m.map("acme", "gone", None) == catalog.HARD_BOUNCE
    assert m.map("acme", "DEAD", "42") == catalog.HARD_BOUNCE
    assert m.map("acme", "DEAD", "0101") == catalog.HARD_BOUNCE
    assert m.map("acme", "DEAD", "103") == catalog.SOFT_BOUNCE
    assert m.map("acme", "DEAD", "1") == catalog.SOFT_BOUNCE  # acme now has its own list
    # the built-in vocabularies are untouched
    assert m.map("smpp", "DELIVRD", None) == catalog.DELIVERED
    assert m.map("twilio", "failed", "30005") == catalog.HARD_BOUNCE
    assert m.map("smpp", "UNDELIV", "1") == catalog.HARD_BOUNCE


def test_extension_file_extends_an_existing_provider(tmp_path):
    path = _write(tmp_path, {"vocabularies": {"twilio": {"canceled": "SOFT_BOUNCE"}}})
    m = StatusMapper.from_env({"SMSTALLY_STATUS_MAP": path})
    assert m.map("twilio", "CANCELED", None) == catalog.SOFT_BOUNCE
    assert m.map("twilio", "delivered", None) == catalog.DELIVERED
    assert m.map("twilio", "failed", "30006") == catalog.HARD_BOUNCE


def test_extension_file_with_a_non_canonical_target_is_refused(tmp_path):
    path = _write(tmp_path, {"vocabularies": {"acme": {"OK": "GREAT"}}})
    with pytest.raises(ValueError, match="GREAT"):
        StatusMapper.from_env({"SMSTALLY_STATUS_MAP": path})


def test_default_mapping_file_is_loaded_without_the_env_var():
    assert StatusMapper.from_env({}).map("vonage", "failed", "4") == catalog.HARD_BOUNCE
    assert StatusMapper.from_env({}).permanent_codes("smsmode") == frozenset(range(3520, 3530))
