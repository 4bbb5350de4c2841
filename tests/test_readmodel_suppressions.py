"""Contract §11's suppression routes and lookup page, in-process (readmodel.service.build +
TestClient) over a real SQLite read model filled through ReadModelWriter, as
tests/test_readmodel_http.py does; the projector's part (the topic into those rows) is in
tests/test_readmodel_suppressions_integration.py, the other backend in test_readmodel_store.py.
"""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's "install httpx2" deprecation notice
    from fastapi.testclient import TestClient

from readmodel.service import build
from readmodel.settings import ApiSettings
from readmodel.store import Batch, ReadModelWriter
from streams.config import Settings

TOKEN = "suppression-t0ken"
T0 = 1_700_000_000_000
BLACKLISTED = "+33612345678"  # "06 12 34 56 78" in French national format
DEAD = "+447700900123"
BOTH = "+33698765432"
LIFTED = "+33611112222"
NEVER = "+33600000001"
XSS = "<script>alert(1)</script>"


def suppression(phone: str, reasons: list[str], v: int = 1, at: int = T0, **over) -> dict:
    """A Suppression record (also tests/test_dashboard_extras_browser.py's): blacklisted
    since ``at`` + 1 s, dead since ``at`` + 2 s, published at ``at`` + 5 s + version ms."""
    rec = {
        "phone": phone,
        "suppressed": bool(reasons),
        "reasons": reasons,
        "blacklisted_at": at + 1000 if "BLACKLISTED" in reasons else None,
        "permanent_error_at": at + 2000 if "PERMANENT_ERROR" in reasons else None,
        "contact_id": "ct-1",
        "campaign_id": None,
        "message_id": None,
        "version": v,
        "updated_at": at + 5000 + v,
    }
    rec.update(over)
    return rec


RECORDS = [
    suppression(BLACKLISTED, ["BLACKLISTED"]),
    suppression(DEAD, ["PERMANENT_ERROR"], campaign_id="camp-1", message_id="msg-1", contact_id=XSS),
    suppression(BOTH, ["PERMANENT_ERROR", "BLACKLISTED"], v=4, campaign_id="camp-2", message_id="msg-2"),
    suppression(LIFTED, ["BLACKLISTED"], v=1),
    suppression(LIFTED, [], v=2),  # a resubscribe lifted it
]


@pytest.fixture
def make_app(tmp_path):
    built = []

    def make(token: str | None = None, records=RECORDS, region: str = "FR"):
        d = tmp_path / f"app{len(built)}"
        s = ApiSettings(
            stream=Settings(data_dir=str(d), default_region=region),
            read_db=f"sqlite:///{d / 'readmodel.sqlite3'}",
            token=token,
        )
        app, _projector, sv = build(s)
        built.append(sv)
        b = Batch()
        for i, rec in enumerate(records):
            b.add_suppression(rec)
            b.advance("sms.suppressions", 0, i)
        ReadModelWriter(sv.db).apply(b)
        c = TestClient(app, follow_redirects=False)
        if token:
            c.headers["Authorization"] = f"Bearer {token}"
        return c

    yield make
    for sv in built:
        sv.db.close()


def check(c: TestClient, phones) -> dict:
    r = c.post("/api/suppressions/check", json={"phones": phones})
    assert r.status_code == 200, r.text
    return r.json()


# -- GET /api/suppressions/{phone} ----------------------------------------------------------
def test_a_phone_is_its_latest_suppression(make_app):
    c = make_app(TOKEN)
    assert c.get(f"/api/suppressions/{BOTH}").json() == RECORDS[2]
    assert c.get(f"/api/suppressions/{LIFTED}").json() == RECORDS[4]


def test_a_phone_never_seen_is_not_suppressed(make_app):
    c = make_app(TOKEN)
    r = c.get(f"/api/suppressions/{NEVER}")
    assert r.status_code == 200
    assert r.json() == {"phone": NEVER, "suppressed": False, "reasons": []}


@pytest.mark.parametrize("written", ["06 12 34 56 78", "0612345678", "+33 6 12 34 56 78", "%2B33612345678"])
def test_the_path_phone_is_normalized_with_the_default_region(make_app, written):
    c = make_app(TOKEN)
    assert c.get(f"/api/suppressions/{written}").json() == RECORDS[0]


def test_the_default_region_is_the_configured_one(make_app):
    c = make_app(TOKEN, region="GB")
    assert c.get("/api/suppressions/07700 900123").json()["reasons"] == ["PERMANENT_ERROR"]
    assert c.get("/api/suppressions/06 12 34 56 78").json()["suppressed"] is False  # not French here


def test_without_a_token_the_phone_is_masked(make_app):
    c = make_app(None)
    got = c.get("/api/suppressions/06 12 34 56 78").json()
    assert got == dict(RECORDS[0], phone="+33*****5678")
    assert c.get(f"/api/suppressions/{NEVER}").json()["phone"] == "+33*****0001"


# -- POST /api/suppressions/check ----------------------------------------------------------
def test_check_answers_the_suppressed_phones_with_their_index_in_the_list(make_app):
    c = make_app(TOKEN)
    asked = [NEVER, BOTH, LIFTED, "06 12 34 56 78", "not a phone", DEAD, BOTH]
    assert check(c, asked) == {
        "suppressed": [
            {"index": 1, "phone": BOTH, "reasons": ["PERMANENT_ERROR", "BLACKLISTED"]},
            {"index": 3, "phone": BLACKLISTED, "reasons": ["BLACKLISTED"]},
            {"index": 5, "phone": DEAD, "reasons": ["PERMANENT_ERROR"]},
            {"index": 6, "phone": BOTH, "reasons": ["PERMANENT_ERROR", "BLACKLISTED"]},
        ]
    }
    assert check(c, []) == {"suppressed": []}


def test_check_without_a_token_masks_phones_and_the_index_still_filters_the_list(make_app):
    c = make_app(None)
    asked = [NEVER, DEAD, LIFTED, "06 12 34 56 78"]
    got = check(c, asked)["suppressed"]
    assert [g["phone"] for g in got] == ["+44******0123", "+33*****5678"]
    assert [p for i, p in enumerate(asked) if i not in {g["index"] for g in got}] == [NEVER, LIFTED]


def test_check_takes_10_000_phones_and_refuses_more(make_app):
    c = make_app(TOKEN)
    asked = [f"+336{i:08d}" for i in range(9_999)] + [DEAD]
    assert check(c, asked)["suppressed"] == [{"index": 9_999, "phone": DEAD, "reasons": ["PERMANENT_ERROR"]}]
    r = c.post("/api/suppressions/check", json={"phones": asked + [BOTH]})
    assert r.status_code == 400
    assert "phones" in r.json()["detail"] and "10000" in r.json()["detail"]


@pytest.mark.parametrize(
    "body, where",
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b"{}", "phones"),
        (b'{"phones": "+33612345678"}', "phones"),
        (b'{"phones": [33612345678]}', "phones.0"),
        (b'{"phones": [null]}', "phones.0"),
        (b'{"phones": ["x\\u0000"]}', "phones.0"),
        (b'{"phones": ["' + b"1" * 65 + b'"]}', "phones.0"),
        (b'{"phones": [], "campaign_id": "c"}', "campaign_id"),
    ],
)
def test_check_with_a_bad_body_is_400_with_a_readable_detail(make_app, body, where):
    c = make_app(TOKEN)
    r = c.post("/api/suppressions/check", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith(where + ":"), r.json()


def test_check_takes_no_query_parameters(make_app):
    c = make_app(TOKEN)
    r = c.post("/api/suppressions/check?limit=5", json={"phones": []})
    assert r.status_code == 400 and "limit" in r.json()["detail"]


def test_with_a_token_both_routes_are_401_without_it(make_app):
    c = make_app(TOKEN)
    for headers in ({"Authorization": ""}, {"Authorization": f"Bearer {TOKEN}x"}):
        for r in (
            c.get(f"/api/suppressions/{BOTH}", headers=headers),
            c.post("/api/suppressions/check", json={"phones": [BOTH]}, headers=headers),
            c.post("/api/suppressions/check", content=b"not json", headers=headers),  # 401 before 400
        ):
            assert r.status_code == 401, r.text
            assert BOTH not in r.text and "BLACKLISTED" not in r.text


def test_the_openapi_document_describes_both_routes(make_app):
    doc = make_app(None).get("/openapi.json").json()
    assert "get" in doc["paths"]["/api/suppressions/{phone}"]
    post = doc["paths"]["/api/suppressions/check"]["post"]
    assert {"200", "400", "401"} <= set(post["responses"])
    assert doc["components"]["schemas"]["SuppressionCheck"]["properties"]["phones"]["maxItems"] == 10_000


# -- the lookup page -------------------------------------------------------------------------
def test_the_lookup_page_shows_reasons_in_words_and_links_the_latest_cause(make_app):
    c = make_app(TOKEN)
    html = c.get("/suppressions", params={"phone": "07700 900123"}).text  # not French: kept as typed
    assert "Not suppressed" in html and "never been suppressed" in html
    html = c.get("/suppressions", params={"phone": DEAD}).text
    assert "Suppressed: do not send" in html and "bounced permanently" in html
    assert 'href="/campaigns/camp-1"' in html and 'href="/messages/msg-1"' in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = c.get("/suppressions", params={"phone": LIFTED}).text
    assert "Not suppressed" in html and "lifted" in html


def test_the_lookup_page_masks_the_phone_without_a_token_and_needs_the_token_with_one(make_app):
    masked = make_app(None).get("/suppressions", params={"phone": BOTH}).text
    assert "+33*****5432" in masked and "unsubscribed" in masked
    assert masked.count(BOTH) == masked.count(f'value="{BOTH}"'), "only in the form, the caller's own input"
    c = make_app(TOKEN)
    assert c.get("/suppressions", params={"phone": BOTH}, headers={"Authorization": ""}).status_code == 401
