"""The read side's HTTP app in-process (readmodel.service.build + TestClient) over a real
SQLite read model filled with ReadModelWriter: contract §10's access rules, phone masking,
CSV safety, log scrubbing, and hostile text shown as text. No Kafka: the projector is built
but never started (so /health/ready answers 503 "not caught up", which is fine here).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import warnings

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's "install httpx2" deprecation notice
    from fastapi.testclient import TestClient

from readmodel.service import build
from readmodel.settings import ApiSettings, UnsafeListenAddress, check_listen_address
from readmodel.store import Batch, ReadModelWriter
from readmodel.web.auth import COOKIE
from readmodel.web.privacy import ScrubPhones, install_log_scrubbing, mask_phone, neutralize_cell, scrub
from streams.config import Settings

TOKEN = "s3cret-t0ken-for-tests"
T0 = 1_700_000_000_000
XSS = "<script>alert(1)</script>"
BOLD = "<b>x</b>"
ATTR_XSS = 'x"><img src=x onerror=alert(1)>'

#: Phones of the read model, and what must never show when they are masked (not the
#: removals page's placeholder +33612345678, which the template shows as an example).
PHONE_FR = "+33698765432"  # masked: +33*****5432
PHONE_UK = "+447700900123"  # masked: +44******0123
PHONE_BAD = "06 98 11 22 33"  # kept as given (phone_valid false)
SECRETS = {PHONE_FR: ["698765432", "69876"], PHONE_UK: ["7700900123", "770090"], PHONE_BAD: ["06 98 11"]}

HOSTILE_CONTACTS = ['=HYPERLINK("x")', "+1", "-1", "@x", "\tx", "\rx", "=1+2", "-2+3"]
ROUND_TRIP_CONTACTS = ['he said "hi", then left', "a,b,c", "line1\nline2", "cr\r\nlf", '"', ",", "é ü 中文"]


def stats(cid: str, name, text=None, *, kind="BATCH", v=1, sent=10, launched_at=T0) -> dict:
    return {
        "campaign_id": cid,
        "name": name,
        "kind": kind,
        "text": text,
        "sender_id": "ACME",
        "sms_type": "marketing",
        "created_at": T0 - 1000,
        "launched_at": launched_at,
        "launch_list_size": 20,
        "version": v,
        "updated_at": T0 + v,
        "sent": sent,
        "not_sent": 2,
        "not_sent_by_reason": {"OPTED_OUT": 1, "OTHER": 1},
        "status_counts": {
            "DELIVERED": 5,
            "PENDING": 2,
            "HARD_BOUNCE": 1,
            "SOFT_BOUNCE": 1,
            "UNKNOWN": 1,
            "NOT_SENT": 2,
        },
        "unsubscribed": 1,
        "credits": 10.0,
        "rates": {
            "receipt": 0.5,
            "delivery": 0.5,
            "waiting": 0.2,
            "temporary_error": 0.1,
            "permanent_error": 0.1,
            "unknown": 0.1,
            "unsubscribe": 0.1,
        },
        "first_sent_at": T0,
        "last_event_at": T0 + 5000,
    }


CATEGORY = {
    "PENDING": "waiting",
    "PROVIDER_ACCEPTED": "receipt",
    "DELIVERED": "receipt",
    "SOFT_BOUNCE": "temporary_error",
    "PROVIDER_ERROR": "temporary_error",
    "HARD_BOUNCE": "permanent_error",
    "UNKNOWN": "unknown",
    "NOT_SENT": "not_sent",
}


def status(
    mid: str,
    cid: str,
    st_: str,
    *,
    phone=PHONE_FR,
    contact=None,
    v=1,
    reason=None,
    error_code=None,
    provider="prov",
    valid=True,
) -> dict:
    return {
        "message_id": mid,
        "campaign_id": cid,
        "contact_id": contact if contact is not None else f"ct-{mid}",
        "phone": phone,
        "status": st_,
        "category": CATEGORY[st_],
        "error_code": error_code,
        "provider": provider,
        "sent_at": T0 + 10,
        "status_at": T0 + 100 * v,
        "version": v,
        "not_sent_reason": reason,
        "phone_valid": valid,
    }


def fill(sv, extra_messages=()) -> None:
    b = Batch()
    off = iter(range(10_000))
    for rec in (
        stats("c1", XSS, BOLD),
        stats("c2", BOLD, XSS, kind="AUTOMATED", sent=5),
        stats(ATTR_XSS, ATTR_XSS, ATTR_XSS, launched_at=T0 + 1),
        stats("plain", "Plain campaign", "Hello"),
    ):
        b.add_stats(rec)
        b.advance("sms.campaign-stats", 0, next(off))
    msgs = [
        status("m1", "c1", "PENDING", v=1),
        status("m1", "c1", "PROVIDER_ACCEPTED", v=2),
        status("m1", "c1", "DELIVERED", v=3),
        status("m2", "c1", "HARD_BOUNCE", phone=PHONE_UK, error_code="=cmd|' /C calc'!A0", provider="@SUM(1)"),
        status("m3", "c1", "NOT_SENT", phone=PHONE_BAD, valid=False),
        status("m4", "c1", "NOT_SENT", reason="OPTED_OUT", contact=XSS),
        status("m5", "c1", "SOFT_BOUNCE", contact=BOLD),
        status("m6", "c1", "UNKNOWN"),
        status("m7", "c1", "PROVIDER_ERROR"),
        status("x1", ATTR_XSS, "DELIVERED", contact=ATTR_XSS),
    ]
    msgs += list(extra_messages)
    for rec in msgs:
        b.add_status(rec)
        b.advance("sms.message-status", 0, next(off))
    for i, (phone, reason) in enumerate(
        [(PHONE_UK, "PERMANENT_ERROR"), (PHONE_FR, "BLACKLISTED"), (PHONE_BAD, "OTHER")]
    ):
        b.add_removal(
            {
                "event_id": f"ev{i}",
                "phone": phone,
                "reason": reason,
                "contact_id": f"ct-{i}",
                "campaign_id": "c1",
                "message_id": "m2",
                "status": "HARD_BOUNCE" if i == 0 else None,
                "error_code": None,
                "provider": "prov",
                "channel": "STOP_KEYWORD" if i == 1 else None,
                "at": T0 + i,
            }
        )
        b.advance("sms.address-book-removals", 0, next(off))
    ReadModelWriter(sv.db).apply(b)


@pytest.fixture
def make_app(tmp_path):
    built = []

    def make(token: str | None = None, extra_messages=()):
        d = tmp_path / f"app{len(built)}"
        s = ApiSettings(stream=Settings(data_dir=str(d)), read_db=f"sqlite:///{d / 'readmodel.sqlite3'}", token=token)
        app, _projector, sv = build(s)
        built.append(sv)
        fill(sv, extra_messages)
        return app, sv

    yield make
    for sv in built:
        sv.db.close()


def client(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


API_ROUTES = [
    "/api/campaigns",
    "/api/campaigns?q=c&sort=name&limit=2",
    "/api/campaigns/c1",
    "/api/campaigns/c1/messages",
    "/api/campaigns/c1/messages?status=DELIVERED",
    "/api/campaigns/c1/messages.csv",
    "/api/campaigns/c1/messages.csv?not_sent_reason=OTHER",
    "/api/messages/m1",
    "/api/removals",
    "/api/removals?reason=BLACKLISTED",
    "/api/suppressions/+33698765432",
]
EVENTS = "/api/events"
PAGES = [
    "/",
    "/?kind=BATCH",
    "/campaigns/c1",
    "/campaigns/c1?wording=emarsys",
    "/campaigns/c1/contacts",
    "/campaigns/c1/contacts?status=DELIVERED",
    "/campaigns/c1/chart.svg",
    "/messages/m1",
    "/removals",
    "/suppressions",
    "/suppressions?phone=0698765432",
]
OPEN = ["/health/live", "/health/ready", "/metrics"]


# -- §10 access ---------------------------------------------------------------------------
def test_with_a_token_every_api_route_and_page_is_401_without_it(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    for path in (
        API_ROUTES + [EVENTS, "/api/campaigns/nope", "/api/messages/nope", "/campaigns/nope", "/messages/nope"] + PAGES
    ):
        r = c.get(path)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        if path.startswith("/api/"):
            assert r.headers["content-type"].startswith("application/json"), path
            assert r.json()["detail"] and r.headers.get("www-authenticate", "").lower().startswith("bearer")
        assert "Plain campaign" not in r.text and "PENDING" not in r.text, path
    for path in OPEN:
        r = c.get(path)
        assert r.status_code in (200, 503) and r.status_code != 401, path  # ready: 503 until caught up
    assert c.get("/health/live").json() == {"alive": True}
    assert "smstally_api_ready" in c.get("/metrics").text


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN, f"Token {TOKEN}", "Bearer  "],
)
def test_a_wrong_token_is_401(make_app, header):
    app, _ = make_app(TOKEN)
    c = client(app)
    for path in API_ROUTES + PAGES:
        assert c.get(path, headers={"Authorization": header}).status_code == 401, path
    c.cookies.set(COOKIE, "0" * 64)
    for path in API_ROUTES + PAGES:
        assert c.get(path).status_code == 401, path
    c.cookies.set(COOKIE, TOKEN)  # the token itself is not the session value
    assert c.get("/").status_code == 401


def test_the_bearer_token_opens_every_api_route_and_page(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in API_ROUTES + PAGES:
        r = c.get(path, headers=auth)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert c.get("/api/campaigns/nope", headers=auth).status_code == 404
    assert c.get("/api/messages/nope", headers=auth).status_code == 404
    assert c.get("/campaigns/nope", headers=auth).status_code == 404
    assert c.get("/api/campaigns", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_login_form_sets_an_httponly_samesite_strict_cookie_that_opens_pages_and_api(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    form = c.get("/login")
    assert form.status_code == 200 and 'name="token"' in form.text
    r = c.post("/login", data={"token": TOKEN, "next": "/campaigns/c1"})
    assert r.status_code == 303 and r.headers["location"] == "/campaigns/c1"
    cookie = r.headers["set-cookie"]
    attrs = {a.strip().split("=")[0].lower(): (a.strip().split("=", 1) + [""])[1] for a in cookie.split(";")[1:]}
    assert cookie.startswith(f"{COOKIE}="), cookie
    assert "httponly" in attrs, cookie
    assert attrs.get("samesite", "").lower() == "strict", cookie
    assert attrs.get("path") == "/", cookie
    assert TOKEN not in cookie, "the cookie must not carry the token itself"
    assert c.cookies.get(COOKIE)
    for path in API_ROUTES + PAGES:
        resp = c.get(path)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
    # logging out drops it
    out = c.post("/logout")
    assert out.status_code == 303
    c.cookies.clear()
    assert c.get("/").status_code == 401


def test_login_with_a_wrong_token_is_401_and_sets_no_cookie(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    for wrong in ("", "nope", TOKEN + " ", TOKEN.upper()):
        r = c.post("/login", data={"token": wrong, "next": "/"})
        assert r.status_code == 401, wrong
        assert "set-cookie" not in r.headers, wrong
    assert c.get("/").status_code == 401


@pytest.mark.parametrize(
    "nxt, where",
    [
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/removals?reason=OTHER", "/removals?reason=OTHER"),
    ],
)
def test_login_redirects_only_within_the_site(make_app, nxt, where):
    app, _ = make_app(TOKEN)
    r = client(app).post("/login", data={"token": TOKEN, "next": nxt})
    assert r.status_code == 303 and r.headers["location"] == where


def test_without_the_token_an_unknown_query_parameter_is_still_401(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    wrong = [
        f"{c.get(p).status_code} {p}"
        for p in (
            "/api/campaigns?colour=red",
            "/api/campaigns/c1?x=1",
            "/api/campaigns/c1/messages?page=2",
            "/api/removals?x=1",
        )
        if c.get(p).status_code != 401
    ]
    assert wrong == []


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_without_a_token_loopback_addresses_are_allowed(host):
    check_listen_address(ApiSettings(stream=Settings(), read_db="sqlite:///x", host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "", "::ffff:0.0.0.0"])
def test_without_a_token_other_addresses_are_refused(host):
    with pytest.raises(UnsafeListenAddress):
        check_listen_address(ApiSettings(stream=Settings(), read_db="sqlite:///x", host=host))
    check_listen_address(ApiSettings(stream=Settings(), read_db="sqlite:///x", host=host, token=TOKEN))


# -- masking --------------------------------------------------------------------------------
def leaks(text: str) -> list[str]:
    return [s for secrets in SECRETS.values() for s in secrets if s in text]


MASKED_VIEWS = [
    "/api/campaigns/c1/messages",
    "/api/campaigns/c1/messages?limit=1",
    "/api/campaigns/c1/messages?status=NOT_SENT",
    "/api/messages/m1",
    "/api/messages/m2",
    "/api/messages/m3",
    "/api/removals",
    f"/api/removals?phone={PHONE_UK.replace('+', '%2B')}",
    "/api/campaigns/c1/messages.csv",
    "/campaigns/c1/contacts",
    "/campaigns/c1/contacts?status=NOT_SENT",
    "/messages/m1",
    "/messages/m2",
    "/messages/m3",
    "/removals",
    "/removals?reason=OTHER",
]


def test_without_a_token_phones_are_masked_everywhere(make_app):
    app, _ = make_app(None)
    c = client(app)
    for path in MASKED_VIEWS:
        r = c.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        assert leaks(r.text) == [], f"{path} shows a phone in full"
    msgs = c.get("/api/campaigns/c1/messages").json()["items"]
    phones = {m["message_id"]: m["phone"] for m in msgs}
    assert phones["m1"] == "+33*****5432" and phones["m2"] == "+44******0123"
    assert phones["m3"] == "** ** ** 22 33"
    history = c.get("/api/messages/m1").json()["history"]
    assert [h["status"] for h in history] == ["PENDING", "PROVIDER_ACCEPTED", "DELIVERED"]
    assert {h["phone"] for h in history} == {"+33*****5432"}
    removals = c.get("/api/removals").json()["items"]
    assert {r["phone"] for r in removals} == {"+33*****5432", "+44******0123", "** ** ** 22 33"}
    # the phone filter still takes a full number (it is the caller's own input)
    got = c.get("/api/removals", params={"phone": PHONE_UK}).json()["items"]
    assert [r["event_id"] for r in got] == ["ev0"] and got[0]["phone"] == "+44******0123"
    rows = list(csv.reader(io.StringIO(c.get("/api/campaigns/c1/messages.csv").text, newline="")))
    assert {r[0]: r[2] for r in rows[1:]}["m2"] == "'+44******0123"  # not E.164 once masked: neutralized


def test_with_a_token_phones_are_shown_in_full(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    msgs = {m["message_id"]: m["phone"] for m in c.get("/api/campaigns/c1/messages").json()["items"]}
    assert msgs["m1"] == PHONE_FR and msgs["m2"] == PHONE_UK and msgs["m3"] == PHONE_BAD
    assert {h["phone"] for h in c.get("/api/messages/m1").json()["history"]} == {PHONE_FR}
    assert {r["phone"] for r in c.get("/api/removals").json()["items"]} == {PHONE_FR, PHONE_UK, PHONE_BAD}
    rows = list(csv.reader(io.StringIO(c.get("/api/campaigns/c1/messages.csv").text, newline="")))
    assert {r[0]: r[2] for r in rows[1:]}["m2"] == PHONE_UK
    for page, phone in (("/campaigns/c1/contacts", PHONE_FR), ("/messages/m2", PHONE_UK), ("/removals", PHONE_UK)):
        assert phone in c.get(page).text, page


# -- CSV ------------------------------------------------------------------------------------
def csv_rows(c: TestClient, path: str) -> list[list[str]]:
    r = c.get(path)
    assert r.status_code == 200, (path, r.text[:200])
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.decode("utf-8")  # UTF-8
    return list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))


def test_csv_neutralizes_formula_cells_but_not_an_e164_phone(make_app):
    extra = [
        status(f"h{i}", "cx", "DELIVERED", phone="+33612345678", contact=cid) for i, cid in enumerate(HOSTILE_CONTACTS)
    ]
    app, _ = make_app(TOKEN, extra)
    c = client(app)
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    rows = csv_rows(c, "/api/campaigns/cx/messages.csv")
    assert rows[0] == [
        "message_id",
        "contact_id",
        "phone",
        "status",
        "category",
        "error_code",
        "provider",
        "not_sent_reason",
        "sent_at",
        "status_at",
    ]
    got = {r[0]: r for r in rows[1:]}
    for i, cid in enumerate(HOSTILE_CONTACTS):
        assert got[f"h{i}"][1] == "'" + cid, (cid, got[f"h{i}"][1])
        assert got[f"h{i}"][2] == "+33612345678", "an E.164 phone is left as it is"
    assert got["h0"][8] == "2023-11-14T22:13:20.010Z" and got["h0"][9] == "2023-11-14T22:13:20.100Z"
    # the other text columns too
    row = {r[0]: r for r in csv_rows(c, "/api/campaigns/c1/messages.csv")[1:]}["m2"]
    assert row[5] == "'=cmd|' /C calc'!A0" and row[6] == "'@SUM(1)"


@pytest.mark.parametrize(
    "value, cell",
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("+33612345678", "+33612345678"),
        ("+447700900123", "+447700900123"),
        ("+33 6 12", "'+33 6 12"),
        ("+33*****5678", "'+33*****5678"),
        ("+0612345678", "'+0612345678"),
        ("+1234567890123456", "'+1234567890123456"),
        ("+6834002", "+6834002"),
        ("plain", "plain"),
        ("", ""),
        ("x=1", "x=1"),
    ],
)
def test_neutralize_cell(value, cell):
    assert neutralize_cell(value) == cell


def test_csv_is_rfc4180_and_round_trips_quotes_commas_and_newlines(make_app):
    extra = [status(f"r{i}", "cr", "DELIVERED", contact=cid) for i, cid in enumerate(ROUND_TRIP_CONTACTS)]
    app, _ = make_app(TOKEN, extra)
    c = client(app)
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    raw = c.get("/api/campaigns/cr/messages.csv").content
    assert raw.startswith(b"message_id,contact_id,phone,") and raw.endswith(b"\r\n")
    assert b'"he said ""hi"", then left"' in raw  # quotes doubled inside a quoted field
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert len(rows) == 1 + len(ROUND_TRIP_CONTACTS) and all(len(r) == 10 for r in rows)
    assert {r[0]: r[1] for r in rows[1:]} == {f"r{i}": cid for i, cid in enumerate(ROUND_TRIP_CONTACTS)}
    head = c.get("/api/campaigns/cr/messages.csv")
    assert 'filename="cr-messages.csv"' in head.headers["content-disposition"]


def test_csv_filters_match_the_json_listing(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    for q in (
        "",
        "?status=DELIVERED",
        "?not_sent_reason=OTHER",
        "?category=temporary_error",
        "?not_sent_reason=OPTED_OUT",
        "?error_code=nope",
    ):
        listed = [m["message_id"] for m in c.get("/api/campaigns/c1/messages" + q).json()["items"]]
        exported = [r[0] for r in csv_rows(c, "/api/campaigns/c1/messages.csv" + q)[1:]]
        assert listed == exported, q
    assert [r[0] for r in csv_rows(c, "/api/campaigns/c1/messages.csv?not_sent_reason=OTHER")[1:]] == ["m3"]


@pytest.mark.parametrize("token", [None, TOKEN])
def test_csv_over_http_is_the_python_formatter_byte_for_byte(make_app, token):
    """The route streams the SQL-formatted export (masked without a token); it must be what
    formatting each row in Python gives (tests/test_csv_fast_path.py holds the details)."""
    from readmodel.web.csv_export import reference_chunks

    extra = [
        status(f"h{i}", "c1", "DELIVERED", contact=v, error_code=v)
        for i, v in enumerate(HOSTILE_CONTACTS + ROUND_TRIP_CONTACTS)
    ]
    app, sv = make_app(token, extra)
    c = client(app)
    if token:
        c.headers["Authorization"] = f"Bearer {token}"
    for q, filters in (("", {}), ("?status=NOT_SENT", {"status": "NOT_SENT"})):
        want = b"".join(reference_chunks(sv.model.iter_messages("c1", **filters), masked=token is None))
        assert c.get("/api/campaigns/c1/messages.csv" + q).content == want, q


# -- logs -----------------------------------------------------------------------------------
COUNTRY_CODES = ["1", "7", "33", "44", "49", "352", "971"]


@st.composite
def phone_like(draw):
    style = draw(st.sampled_from(["e164", "national", "intl00", "urlenc", "e164_spaced"]))
    cc = draw(st.sampled_from(COUNTRY_CODES))
    sub = draw(st.text(alphabet="0123456789", min_size=max(7, 9 - len(cc)), max_size=15 - len(cc)))
    if style == "e164":
        return "+" + cc + sub
    if style == "intl00":
        return "00" + cc + sub
    if style == "urlenc":
        return "%2B" + cc + sub
    digits = "0" + draw(st.text(alphabet="0123456789", min_size=8, max_size=10))
    sep = draw(st.sampled_from([" ", ".", "-", "  ", " - ", "%20"]))
    groups = [digits[:2]] + [digits[i : i + 2] for i in range(2, len(digits), 2)]
    if style == "e164_spaced":
        return "+" + cc + sep + sep.join(groups)[1:]
    return sep.join(groups)


PREFIXES = [
    "",
    "to ",
    "phone=",
    "tel:",
    '{"phone": "',
    "GET /api/removals?phone=",
    "(",
    "[",
    "sms for ",
    "msisdn: ",
    "recipients=a,",
    "/removals?phone=",
    "x&phone=",
]
SUFFIXES = ["", " ok", '"', ")", ",", ";", "&limit=10", ".", " at 12:00", " (retry 3)"]


def no_long_digit_runs(text: str) -> bool:
    return re.search(r"\d{7}", re.sub(r"[ .\-]|%20", "", text)) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(PREFIXES), phone=phone_like(), suffix=st.sampled_from(SUFFIXES))
@example(prefix="to ", phone="+33612345678", suffix="")
@example(prefix="", phone="06 12 34 56 78", suffix="")
@example(prefix="", phone="06.12.34.56.78", suffix="")
@example(prefix="", phone="06-12-34-56-78", suffix="")
@example(prefix="phone=", phone="%2B33612345678", suffix="&limit=1")
def test_scrub_leaves_no_seven_digits_of_a_phone(prefix, phone, suffix):
    out = scrub(prefix + phone + suffix)
    assert no_long_digit_runs(out), (prefix + phone + suffix, out)
    assert out.startswith(prefix.rstrip("0123456789")) and len(out) == len(prefix + phone + suffix)
    assert out[-len(suffix) :] == suffix if suffix else True


@pytest.mark.parametrize(
    "line", ["message abc123 sent", "retry 3 of 5", "port 8080", "batch of 5000 rows", "offset 123456", "22:13:20,010"]
)
def test_scrub_leaves_short_numbers_alone(line):
    """Under 7 digits: not a phone. (7 digits and more are masked whatever they are, e.g. an
    epoch-ms timestamp or a dashed date in a message: the price of never printing a phone.)"""
    assert scrub(line) == line


@pytest.mark.parametrize(
    "line", ["GET /login?next=%2Fremovals%3Fphone%3D%2B33612345678", "msisdn_33612345678", "phone:a0612345678"]
)
def test_scrub_masks_a_phone_glued_to_a_word_character(line):
    assert no_long_digit_runs(scrub(line)), scrub(line)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_a_log_record_with_a_phone_passes_through_scrubphones_masked():
    h = _Capture()
    h.addFilter(ScrubPhones())
    log = logging.getLogger("smstally.test.scrub")
    log.addHandler(h)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("sending to %s (contact %s)", "+33612345678", "c-1")
        log.warning("national %s", "06 12 34 56 78")
        log.info("no phone here: %d rows", 12)
    finally:
        log.removeHandler(h)
    assert h.lines == ["sending to +*******5678 (contact c-1)", "national ** ** ** 56 78", "no phone here: 12 rows"]


def test_install_log_scrubbing_covers_the_root_handlers_and_uvicorn():
    root = logging.getLogger()
    h = _Capture()
    root.addHandler(h)
    old = root.level
    root.setLevel(logging.INFO)
    try:
        install_log_scrubbing()
        logging.getLogger("smstally.api").info("removal for %s", "+447700900123")
        logging.getLogger("uvicorn.error").info("GET /api/removals?phone=%2B447700900123")
    finally:
        root.removeHandler(h)
        root.setLevel(old)
        for other in root.handlers:  # pytest's own handlers got the filter too
            for f in [f for f in other.filters if isinstance(f, ScrubPhones)]:
                other.removeFilter(f)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka"):
            for f in [f for f in logging.getLogger(name).filters if isinstance(f, ScrubPhones)]:
                logging.getLogger(name).removeFilter(f)
    assert len(h.lines) == 2 and all(no_long_digit_runs(x) for x in h.lines), h.lines
    assert h.lines[0] == "removal for +********0123"


# -- mask_phone -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "phone, masked",
    [
        ("+33612345678", "+33*****5678"),
        ("+12025550123", "+1******0123"),
        ("+447700900123", "+44******0123"),
        ("+79161234567", "+7******4567"),
        ("+35212345678", "+352****5678"),
        ("0612345678", "******5678"),
        ("06 12 34 56 78", "** ** ** 56 78"),
        ("123", "123"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


@settings(max_examples=200, deadline=None)
@given(cc=st.sampled_from(COUNTRY_CODES), sub=st.text(alphabet="0123456789", min_size=6, max_size=12))
def test_mask_phone_keeps_plus_country_code_and_last_four_digits_only(cc, sub):
    phone = "+" + cc + sub
    m = mask_phone(phone)
    assert len(m) == len(phone)
    assert m.startswith("+" + cc) and m.endswith(phone[-4:])
    assert m[1 + len(cc) : -4] == "*" * (len(phone) - len(cc) - 5)


# -- hostile text is shown as text ------------------------------------------------------------
def test_hostile_names_and_texts_are_escaped_in_pages(make_app):
    app, _ = make_app(TOKEN)
    c = client(app)
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    from urllib.parse import quote

    pages = {
        "/": (XSS, BOLD, ATTR_XSS),
        "/campaigns/c1": (XSS, BOLD),
        "/campaigns/c2": (BOLD, XSS),
        f"/campaigns/{quote(ATTR_XSS, safe='')}": (ATTR_XSS,),
        "/campaigns/c1/contacts": (XSS, BOLD),
        f"/campaigns/{quote(ATTR_XSS, safe='')}/contacts": (ATTR_XSS,),
        "/messages/m4": (XSS,),
        "/messages/m5": (BOLD,),
        "/?q=" + quote(XSS): (XSS,),
        "/removals?phone=" + quote(XSS): (XSS,),
    }
    for path, values in pages.items():
        r = c.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        html = r.text
        for v in values:
            assert v not in html, f"{path} renders {v!r} as HTML"
        for bad in ("<script>alert", "<b>x", "<img src=x", "onerror=alert(1)>"):
            assert bad not in html, f"{path}: {bad!r} unescaped"
        assert "script-src 'self'" in r.headers["content-security-policy"], path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in c.get("/").text
    assert "&lt;b&gt;x&lt;/b&gt;" in c.get("/").text
    page = c.get("/campaigns/c1").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the name
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # the text
    page2 = c.get("/campaigns/c2").text
    assert "&lt;b&gt;x&lt;/b&gt;" in page2 and "&lt;script&gt;alert(1)&lt;/script&gt;" in page2
    # the JSON API returns the values as they are (JSON, not HTML)
    assert c.get("/api/campaigns/c1").json()["name"] == XSS


def test_ids_with_a_slash_are_reachable(make_app):
    app, _ = make_app(None, [status("m/1", "2024/black-friday", "DELIVERED")])
    c = client(app)
    b = Batch()
    b.add_stats(stats("2024/black-friday", "Black Friday"))
    b.advance("sms.campaign-stats", 1, 0)
    ReadModelWriter(app.state.services.db).apply(b)
    assert 'href="/campaigns/2024%2Fblack-friday"' in c.get("/").text
    wrong = [
        f"{c.get(p).status_code} {p}"
        for p in (
            "/api/campaigns/2024%2Fblack-friday",
            "/api/campaigns/2024%2Fblack-friday/messages",
            "/api/campaigns/2024%2Fblack-friday/messages.csv",
            "/api/messages/m%2F1",
            "/campaigns/2024%2Fblack-friday",
            "/campaigns/2024%2Fblack-friday/contacts",
            "/messages/m%2F1",
        )
        if c.get(p).status_code != 200
    ]
    assert wrong == []
