"""The dashboard's presentation: templates, formatters, chart and glossary.

Fast and server-less: templates are rendered straight from the Jinja environment the
routes use. Checks that every input value comes out as text (never as HTML), that the
chart is valid SVG whatever the history, that the glossary covers every status, and
(when ``node`` is installed) that live.js formats every live cell exactly like the
server did.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from processors import catalog, counters
from readmodel.web import charts, glossary
from readmodel.web import format as fmt

WEB = Path(__file__).resolve().parent.parent / "readmodel" / "web"
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"

T0 = 1764597780000  # 2025-12-01 14:03 UTC
HOUR = 3_600_000

XSS_NAME = "<script>alert(1)</script>"
XSS_TEXT = "<b>x</b>"
XSS_CONTACT = '"><img src=x onerror=alert(1)>'
XSS_ID = 'c"><svg onload=alert(1)>/1'


@pytest.fixture(scope="module")
def env() -> Environment:
    e = Environment(loader=PackageLoader("readmodel.web", "templates"), autoescape=True)
    fmt.register(e)
    return e


def make_stats(**over) -> dict:
    counts = {
        "DELIVERED": 43876,
        "PROVIDER_ACCEPTED": 512,
        "PENDING": 1480,
        "SOFT_BOUNCE": 1204,
        "PROVIDER_ERROR": 88,
        "HARD_BOUNCE": 731,
        "UNKNOWN": 319,
    }
    sent = sum(counts.values())
    rates = {name: sum(counts.get(s, 0) for s in nums) / sent for name, nums in catalog.RATE_NUMERATORS.items()}
    rates["unsubscribe"] = 377 / sent
    c = dict(
        campaign_id="cmp-2025-12-winter",
        name="Winter sale",
        kind="BATCH",
        text="ACME: -20% this weekend. STOP 36173",
        sender_id="ACME",
        sms_type="marketing",
        created_at=T0 - 2 * HOUR,
        launched_at=T0,
        launch_list_size=50000,
        version=412,
        updated_at=T0 + 3 * HOUR,
        sent=sent,
        not_sent=1790,
        not_sent_by_reason={
            "HARD_BOUNCE": 802,
            "OPTED_OUT": 611,
            "INVALID_NUMBER": 214,
            "INSUFFICIENT_CREDIT": 120,
            "DUPLICATE": 43,
        },
        status_counts=counts,
        unsubscribed=377,
        credits=48210.5,
        rates=rates,
        first_sent_at=T0 + 60_000,
        last_event_at=T0 + 3 * HOUR,
    )
    c.update(over)
    return c


def make_message(**over) -> dict:
    m = dict(
        message_id="msg-0001",
        campaign_id="cmp-2025-12-winter",
        contact_id="CRM-100200",
        phone="+33*******5678",
        status="HARD_BOUNCE",
        category="permanent_error",
        error_code="11",
        provider="smpp",
        sent_at=T0,
        status_at=T0 + 7000,
        version=3,
        not_sent_reason=None,
        phone_valid=True,
    )
    m.update(over)
    return m


def history(n: int) -> list[dict]:
    out = []
    for i in range(n):
        f = (i + 1) / max(n, 1)
        out.append(
            make_stats(
                version=i,
                updated_at=T0 + i * 1000,
                rates={
                    "receipt": 0.9 * f,
                    "delivery": 0.85 * f,
                    "waiting": 1 - f,
                    "temporary_error": 0.05 * f,
                    "permanent_error": 0.03 * f,
                    "unknown": 0.02 * f,
                    "unsubscribe": 0.0,
                },
            )
        )
    return out


def contexts(hostile: bool = False) -> dict[str, dict]:
    """A realistic context for every template; with ``hostile``, every input is an attack."""
    if hostile:
        c = make_stats(
            campaign_id=XSS_ID,
            name=XSS_NAME,
            text=XSS_TEXT,
            sender_id=XSS_NAME,
            sms_type=XSS_TEXT,
            not_sent_by_reason={"OPTED_OUT": 3, XSS_NAME: 2},
        )
        m = make_message(
            campaign_id=XSS_ID,
            contact_id=XSS_CONTACT,
            message_id=XSS_ID,
            error_code=XSS_NAME,
            provider=XSS_TEXT,
            phone=XSS_CONTACT,
            not_sent_reason=XSS_NAME,
            phone_valid=False,
        )
        q, title, detail = XSS_NAME, XSS_NAME, XSS_CONTACT
    else:
        c = make_stats()
        m = make_message()
        q, title, detail = "winter", "Rejected (hard bounce)", "No campaign with this ID."
    cid = fmt.pathseg(c["campaign_id"])
    removal = dict(
        event_id="e1",
        phone=m["phone"],
        reason="PERMANENT_ERROR",
        contact_id=m["contact_id"],
        campaign_id=m["campaign_id"],
        message_id=m["message_id"],
        status="HARD_BOUNCE",
        error_code=m["error_code"],
        provider=m["provider"],
        channel=XSS_NAME if hostile else None,
        at=T0,
    )
    unsub = dict(
        removal,
        event_id="e2",
        reason="BLACKLISTED",
        message_id=None,
        status=None,
        error_code=None,
        provider=None,
        channel="STOP_KEYWORD",
    )
    msg = dict(m, history=[dict(m, status="PENDING", category="waiting", version=1, error_code=None), m])
    return {
        "login.html": dict(error=XSS_NAME if hostile else "Wrong token.", next=XSS_CONTACT if hostile else "/"),
        "campaigns.html": dict(
            campaigns=[c, make_stats(campaign_id="c2", name="OTP", kind="AUTOMATED")],
            q=q,
            kind="BATCH",
            next_cursor=XSS_CONTACT if hostile else "abc",
            sort="-sent",
            logged_in=True,
        ),
        "campaign.html": dict(
            c=c,
            wording="emarsys",
            chart_svg=charts.rates_chart(history(50)),
            pending_timeout_h=72.0,
            glossary=glossary.glossary(),
            csv_base=f"/api/campaigns/{cid}/messages.csv",
            contacts_base=f"/campaigns/{cid}/contacts",
            logged_in=True,
        ),
        "contacts.html": dict(
            c=c,
            title=title,
            filters={"status": "HARD_BOUNCE", "error_code": m["error_code"]},
            items=[
                m,
                make_message(message_id="msg-2", status="NOT_SENT", category="not_sent", not_sent_reason="OPTED_OUT"),
            ],
            next_cursor="cur",
            csv_url=f"/api/campaigns/{cid}/messages.csv?status=HARD_BOUNCE",
            total=731,
            logged_in=True,
        ),
        "message.html": dict(m=msg, logged_in=True),
        "removals.html": dict(
            items=[removal, unsub], phone=q, reason="PERMANENT_ERROR", next_cursor="n1", logged_in=True
        ),
        "error.html": dict(status_code=404, detail=detail),
    }


# ----------------------------------------------------------------------------- rendering


def test_every_template_renders_with_realistic_data(env):
    for name, ctx in contexts().items():
        html = env.get_template(name).render(**ctx)
        assert html.startswith("<!doctype html>"), name
        assert "smstally" in html and "/static/app.css" in html, name


def test_base_header(env):
    html = env.get_template("campaigns.html").render(**contexts()["campaigns.html"])
    assert 'href="/"' in html and 'href="/removals"' in html
    assert 'action="/logout"' in html and 'method="post"' in html
    assert "data-live" in html and 'src="/static/live.js"' in html
    anon = env.get_template("campaigns.html").render(**dict(contexts()["campaigns.html"], logged_in=False))
    assert 'action="/logout"' not in anon


def test_login_form(env):
    html = env.get_template("login.html").render(error=None, next="/campaigns/x")
    assert 'action="/login"' in html and 'method="post"' in html
    assert 'type="password" name="token"' in html
    assert 'type="hidden" name="next" value="/campaigns/x"' in html
    assert "live.js" not in html  # no SSE before signing in


def test_campaign_list(env):
    html = env.get_template("campaigns.html").render(**contexts()["campaigns.html"])
    assert 'data-campaign="cmp-2025-12-winter"' in html
    assert 'href="/campaigns/cmp-2025-12-winter"' in html
    for field in (
        "sent",
        "rate:delivery",
        "count:HARD_BOUNCE",
        "count:SOFT_BOUNCE",
        "count:UNKNOWN",
        "unsubscribed",
        "progress",
        "done",
    ):
        assert f'data-field="{field}"' in html, field
    assert 'href="/?q=winter&amp;kind=AUTOMATED&amp;sort=-sent"' in html  # tabs keep q
    assert 'name="q" value="winter"' in html and 'name="kind" value="BATCH"' in html
    assert "cursor=abc" in html
    assert ">48,210<" in html and ">91.0%<" in html


def test_campaign_page(env):
    ctx = contexts()["campaign.html"]
    html = env.get_template("campaign.html").render(**ctx)
    assert 'data-campaign="cmp-2025-12-winter"' in html
    for s in glossary.SENT_STATUS_ORDER:
        assert f'data-field="count:{s}"' in html
        assert f'href="/campaigns/cmp-2025-12-winter/contacts?status={s}"' in html
        assert f'href="/api/campaigns/cmp-2025-12-winter/messages.csv?status={s}"' in html
        assert catalog.STATUSES[s].emarsys in html
    assert 'data-field="count:NOT_SENT"' not in html
    for r in catalog.NOT_SENT_REASONS:
        assert f'data-field="reason:{r}"' in html
        assert f"contacts?not_sent_reason={r}" in html
    for rate in catalog.RATE_NAMES:
        assert f'data-field="rate:{rate}"' in html
    assert "?wording=smsmode" in html and "?wording=emarsys" in html
    assert "72 h after the last send" in html  # something is still waiting
    assert "<svg" in html and "Reception rates over time" in html
    smsmode = env.get_template("campaign.html").render(**dict(ctx, wording="smsmode"))
    assert "Operator / absence temporary error" in smsmode
    done = make_stats(status_counts=dict(make_stats()["status_counts"], PENDING=0))
    final = env.get_template("campaign.html").render(**dict(ctx, c=done, chart_svg=Markup("")))
    assert re.search(r'class="note note-info" data-visible="waiting" hidden', final)


def test_contacts_and_message_and_removals(env):
    ctx = contexts()
    html = env.get_template("contacts.html").render(**ctx["contacts.html"])
    assert 'href="/messages/msg-0001"' in html
    assert "Download CSV" in html and 'href="/api/campaigns/cmp-2025-12-winter/messages.csv?status=HARD_BOUNCE"' in html
    assert "?status=HARD_BOUNCE&amp;error_code=11&amp;cursor=cur" in html
    assert 'href="/campaigns/cmp-2025-12-winter"' in html
    assert "Opted out" in html
    msg = env.get_template("message.html").render(**ctx["message.html"])
    assert msg.count('class="tl-item') == 2 and "2025-12-01 14:03:07 UTC" in msg
    rem = env.get_template("removals.html").render(**ctx["removals.html"])
    assert 'name="phone" value="winter"' in rem and "STOP reply" in rem
    assert 'value="PERMANENT_ERROR" selected' in rem and "cursor=n1" in rem
    err = env.get_template("error.html").render(status_code=400, detail=[{"loc": ["query", "limit"], "msg": "too big"}])
    assert "query.limit" in err and "too big" in err
    alt = env.get_template("error.html").render(status_code_=404, detail="gone")  # as pages.py passes it
    assert ">404<" in alt and "Not found" in alt


def test_no_inline_styles_or_scripts():
    """The pages are served with a CSP of style-src/script-src 'self'."""
    for path in TEMPLATES.glob("*.html"):
        src = path.read_text()
        assert "style=" not in src and "<style" not in src, path.name
        assert not re.search(r"<script(?![^>]*\bsrc=)", src), path.name
        assert not re.search(r"\son[a-z]+=", src), path.name
    assert "style=" not in str(charts.rates_chart(history(3)))


@pytest.mark.parametrize("name", sorted(contexts(hostile=True)))
def test_hostile_values_render_as_text(env, name):
    html = env.get_template(name).render(**contexts(hostile=True)[name])
    for raw in (XSS_NAME, XSS_TEXT, XSS_CONTACT, "<svg onload", "<img src=x", "<b>x"):
        assert raw not in html, (name, raw)
    assert "alert(1)" in html and "&lt;" in html  # shown, as text


def test_hostile_ids_stay_inside_urls(env):
    html = env.get_template("campaigns.html").render(**contexts(hostile=True)["campaigns.html"])
    assert f'href="/campaigns/{fmt.pathseg(XSS_ID)}"' in html
    assert "%2F" in fmt.pathseg(XSS_ID)  # a slash cannot escape the path segment


def test_templates_never_mark_input_safe():
    for path in TEMPLATES.glob("*.html"):
        src = path.read_text()
        assert "|safe" not in src.replace(" ", ""), path.name
        assert "autoescape false" not in src, path.name


def test_no_external_assets():
    pattern = re.compile(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
    for path in list(TEMPLATES.glob("*.html")) + list(STATIC.glob("*")):
        src = path.read_text()
        assert not pattern.search(src), path.name
        assert "@import" not in src, path.name
    assert (STATIC / "app.css").exists() and (STATIC / "live.js").exists()
    js = (STATIC / "live.js").read_text()
    assert "innerHTML" not in js and "eval(" not in js and "document.write" not in js


# ----------------------------------------------------------------------------- formatters


def test_formatters():
    assert fmt.num(1234567) == "1,234,567" and fmt.num(0) == "0" and fmt.num(None) == "\u2014"
    assert fmt.pct(0) == "0%" and fmt.pct(1) == "100%" and fmt.pct(0.9123) == "91.2%"
    assert fmt.pct(0.0004) == "<0.1%" and fmt.pct(0.99996) == ">99.9%" and fmt.pct(0.0005) == "0.1%"
    assert fmt.pct(None) == "\u2014"
    assert fmt.credits(48210.5) == "48,210.5" and fmt.credits(12.0) == "12" and fmt.credits(0.125) == "0.13"
    assert fmt.dt(T0) == "2025-12-01 14:03 UTC" and fmt.dt(None) == "\u2014"
    assert fmt.dt_short(T0) == "2025-12-01 14:03" and fmt.dts(T0 + 7000) == "2025-12-01 14:03:07 UTC"
    assert fmt.iso(T0 + 5) == "2025-12-01T14:03:00.005Z"
    assert fmt.reltime(T0, T0 + 10_000) == "just now"
    assert fmt.reltime(T0, T0 + 3 * 60_000) == "3 min ago"
    assert fmt.reltime(T0, T0 + 2 * HOUR) == "2 h ago"
    assert fmt.reltime(T0 + 2 * HOUR, T0) == "in 2 h"
    assert fmt.reltime(T0, T0 + 50 * HOUR) == "2 d ago"
    assert fmt.hours(72.0) == "72" and fmt.hours(1.5) == "1.5"
    assert fmt.qs({"status": "X", "cursor": None}, cursor="a b") == "?status=X&cursor=a+b"
    assert fmt.qs(q="", kind=None) == ""
    assert fmt.pathseg("a/b c") == "a%2Fb%20c"


def test_rates_fall_back_to_counts():
    c = make_stats(rates={})
    assert fmt.rate(c, "receipt") == pytest.approx((43876 + 512) / c["sent"])
    assert fmt.rate(make_stats(sent=0, rates={}), "receipt") == 0.0
    p = fmt.progress(c)
    assert p["done"] == pytest.approx(1 - 1480 / c["sent"])
    assert sum(w for _, _, w in p["segments"]) == pytest.approx(p["done"] * 100, abs=0.01)


# ----------------------------------------------------------------------------- chart


@pytest.mark.parametrize("n", [0, 1, 2, 5000])
def test_chart_is_valid_svg(n):
    svg = charts.rates_chart(history(n))
    assert isinstance(svg, Markup)
    root = ET.fromstring(str(svg))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.find("s:title", ns) is not None and "rates" in root.find("s:title", ns).text.lower()
    assert len(root.findall(".//s:g[@class='legend-item']", ns)) == 5
    gridlabels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "0%" in gridlabels and "100%" in gridlabels
    series = root.findall(".//s:path[@class]", ns)
    if n >= 2:
        assert len(series) == 5
        for p in series:
            assert p.get("d").count("L") + 1 <= charts.MAX_POINTS
        assert any(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t or "") for t in gridlabels)  # time ticks
    else:
        assert not series


def test_chart_downsample_and_purity():
    pts = [(T0 + i, i) for i in range(10_000)]
    ds = charts.downsample(pts)
    assert len(ds) <= charts.MAX_POINTS and ds[0] == pts[0] and ds[-1] == pts[-1]
    assert [t for t, _ in ds] == sorted(t for t, _ in ds)
    h = history(700)
    assert charts.rates_chart(h) == charts.rates_chart(list(reversed(h)))  # order-free, deterministic
    assert charts.rates_chart([{"updated_at": None}, "junk", {}]).count("<path") == 0


# ----------------------------------------------------------------------------- glossary


def test_glossary_covers_every_status():
    covered = {e.status for e in glossary.GLOSSARY if e.is_status}
    assert covered == set(catalog.STATUSES)
    for e in glossary.GLOSSARY:
        assert e.meaning and e.address_book_why and e.emarsys and e.smsmode
        assert e.address_book in ("kept", "removed")
        if e.is_status:
            info = catalog.STATUSES[e.status]
            assert e.category == info.category and e.emarsys == info.emarsys
            assert e.smsmode == ("none" if info.smsmode == "\u2014" else info.smsmode)
    removed = {e.status for e in glossary.GLOSSARY if e.address_book == "removed"}
    assert removed == {"HARD_BOUNCE", "UNSUBSCRIBED"}  # contract §7
    assert set(glossary.NOT_SENT_REASON_LABELS) == set(catalog.NOT_SENT_REASONS)
    assert set(glossary.STATUS_ORDER) == set(catalog.STATUSES)


def test_glossary_is_shown(env):
    html = env.get_template("campaign.html").render(**dict(contexts()["campaign.html"], glossary=None))
    for e in glossary.GLOSSARY:
        assert e.meaning in html


# ----------------------------------------------------------------------------- live.js parity


class _Fields(HTMLParser):
    """Collects (data-field, data-format, text) of leaf elements carrying data-field."""

    def __init__(self):
        super().__init__()
        self.stack: list[list] = []
        self.found: list[tuple[str, str | None, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "br", "meta", "link", "rect", "circle", "path", "line"):
            return
        self.stack.append([tag, a.get("data-field"), a.get("data-format"), []])

    def handle_endtag(self, tag):
        while self.stack:
            t, field, f, text = self.stack.pop()
            if field and field != "progress":
                self.found.append((field, f, "".join(text)))
            if self.stack:
                self.stack[-1][3].extend(text)
            if t == tag:
                break

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][3].append(data)


NODE = shutil.which("node")

#: Contract §11 figures: every bucket, the open last one, one bucket only, exact 50 % / 95 % edges.
DELIVERY_RECORDS = [
    make_stats(delivery_seconds={b: i + 1 for i, b in enumerate(counters.DELIVERY_BUCKETS)}),
    make_stats(delivery_seconds={"gt_259200": 3}),
    make_stats(delivery_seconds={"le_5": 7}),
    make_stats(delivery_seconds={"le_10": 50, "le_30": 45, "le_60": 5}),
    make_stats(delivery_seconds={"le_60": 1, "le_3600": 1}),
]
BREAKDOWNS = [
    {},
    {
        "smpp": {"DELIVERED": 3, "PENDING": 1},
        "twilio": {"DELIVERED": 3, "HARD_BOUNCE": 1},
        "unknown": {"SOFT_BOUNCE": 9},
    },
    {"b": {"PROVIDER_ERROR": 1, "PROVIDER_ACCEPTED": 2}, "a": {"UNKNOWN": 3}, "other": {}},
]


def _node(script: str) -> str:
    return subprocess.run([NODE, "-"], input=script, capture_output=True, text=True, check=True, timeout=60).stdout


_JS_PRELUDE = (
    "global.window = global; global.document = {readyState: 'complete', querySelector: () => null,"
    " querySelectorAll: () => []};\n"
)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_live_js_formats_like_the_server(env):
    records = [
        make_stats(),
        make_stats(
            rates={}, sent=7, not_sent=0, status_counts={"DELIVERED": 3, "PENDING": 4}, credits=0.125, unsubscribed=0
        ),
        make_stats(sent=0, not_sent=0, status_counts={}, rates={}, not_sent_by_reason={}, credits=0),
        *DELIVERY_RECORDS,
    ]
    cases = []
    for rec in records:
        for tpl, ctx in (
            ("campaign.html", dict(contexts()["campaign.html"], c=rec)),
            ("campaigns.html", dict(contexts()["campaigns.html"], campaigns=[rec])),
        ):
            p = _Fields()
            p.feed(env.get_template(tpl).render(**ctx))
            for field, f, text in p.found:
                if f == "reltime":
                    continue
                cases.append({"rec": rec, "field": field, "format": f, "text": text.strip()})
    assert len(cases) > 100
    values = [0, 1, 0.5, 0.9123, 0.0004, 0.0005, 0.99949, 0.99951, 0.25, 0.125, 1 / 3, 2 / 3, 0.0015, 0.0025]
    numbers = [0, 7, 999, 1000, 1234567, -1500, 12.5]
    script = (
        _JS_PRELUDE
        + (STATIC / "live.js").read_text()
        + f"""
const L = window.smstallyLive;
const cases = {json.dumps(cases)};
const out = {{
  fields: cases.map(c => L.fieldText(c.rec, c.field, c.format)),
  pct: {json.dumps(values)}.map(L.pct),
  num: {json.dumps(numbers)}.map(L.num),
  credits: {json.dumps(values + numbers)}.map(L.credits),
  dt: [L.dt({T0}), L.dtShort({T0}), L.dts({T0 + 7999}), L.dt(null)],
  rel: [L.reltime({T0}, {T0 + 10_000}), L.reltime({T0}, {T0 + 3 * 60_000}), L.reltime({T0 + 2 * HOUR}, {T0}),
        L.reltime({T0}, {T0 + 50 * HOUR}), L.reltime({T0}, {T0 + 3590_000})],
  breakdowns: {json.dumps(BREAKDOWNS)}.map(L.breakdownRows),
  bounds: L.deliveryBounds,
  cat: L.statusCategory, nums: L.rateNumerators,
}};
process.stdout.write(JSON.stringify(out));
"""
    )
    out = json.loads(_node(script))
    for case, got in zip(cases, out["fields"]):
        assert got == case["text"], case
    assert out["pct"] == [fmt.pct(v) for v in values]
    assert out["num"] == [fmt.num(v) for v in numbers]
    assert out["credits"] == [fmt.credits(v) for v in values + numbers]
    assert out["dt"] == [fmt.dt(T0), fmt.dt_short(T0), fmt.dts(T0 + 7999), fmt.dt(None)]
    assert out["rel"] == [
        fmt.reltime(T0, T0 + 10_000),
        fmt.reltime(T0, T0 + 3 * 60_000),
        fmt.reltime(T0 + 2 * HOUR, T0),
        fmt.reltime(T0, T0 + 50 * HOUR),
        fmt.reltime(T0, T0 + 3590_000),
    ]
    assert {c["field"].split(":")[0] for c in cases} >= {"within", "pctl"}
    assert out["breakdowns"] == [fmt.breakdown_rows(m) for m in BREAKDOWNS]
    assert out["bounds"] == list(counters.DELIVERY_BOUNDS)
    assert out["cat"] == {s: i.category for s, i in catalog.STATUSES.items()}
    assert out["nums"] == {k: list(v) for k, v in catalog.RATE_NUMERATORS.items()}


def _campaign_html(env, **over) -> str:
    return env.get_template("campaign.html").render(**dict(contexts()["campaign.html"], c=make_stats(**over)))


def test_delivery_percentiles_are_bucket_bounds(env):
    html = _campaign_html(env, delivery_seconds={"le_30": 5, "le_600": 4, "gt_259200": 1})
    assert re.search(r'data-visible="delivered"\s*>', html), "the card shows once something is delivered"
    assert 'data-field="pctl:50">\u2264 30 s<' in html  # 5 of 10 reach 50 % in le_30
    assert 'data-field="pctl:95">&gt; 3 d<' in html  # 9 of 10 are not 95 %
    assert 'data-field="within:600">90.0%<' in html and 'data-field="within:10">0%<' in html
    assert 'data-meter="within:600" width="90"' in html
    assert fmt.delivery_percentile(make_stats(delivery_seconds={"le_5": 1, "le_10": 19}), 95) == "\u2264 10 s"
    assert fmt.delivery_percentile(make_stats(delivery_seconds={"le_5": 1, "le_10": 19}), 5) == "\u2264 5 s"


def test_contract_11_cards_are_rendered_hidden_until_there_is_data(env):
    html = _campaign_html(env)  # a record published before contract §11: none of its fields
    for cond in ("delivered", "breakdown:by_provider", "breakdown:by_operator"):
        assert re.search(rf'data-visible="{cond}" hidden', html), cond
    assert 'data-field="pctl:50">\u2014<' in html


def test_breakdown_rows_largest_first_with_category_shares(env):
    m = {"b": {"DELIVERED": 1, "HARD_BOUNCE": 1}, "a": {"DELIVERED": 2}, "big": {"PENDING": 3, "SOFT_BOUNCE": 1}}
    assert fmt.breakdown_rows(m) == [
        ["big", "4", "0%", "25.0%", "0%", "75.0%"],
        ["a", "2", "100%", "0%", "0%", "0%"],
        ["b", "2", "50.0%", "0%", "50.0%", "0%"],
    ]
    html = _campaign_html(env, by_operator=m)
    body = html[html.index('data-breakdown="by_operator"') :]
    assert body.index(">big<") < body.index(">a<") < body.index(">b<")
    assert re.search(r'data-visible="breakdown:by_operator"\s*>', html)
