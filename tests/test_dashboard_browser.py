"""The dashboard in a real browser, during a simulated campaign day (contract §10).

Nothing is mocked: the embedded Tansu broker, one real ``smstally worker``, one real
``smstally api`` with a token, and Debian's Chromium driven by Playwright
(tests/browser.py). The day is published from a background thread in chunks with small
pauses, so that the counters move while the browser watches:

1. ``/`` without the cookie is the login page (401); a wrong token is refused; the right
   one, typed into the form, sets an HttpOnly, SameSite=Strict session cookie.
2. On the campaign list a live cell changes without a reload (Server-Sent Events).
3. Once the whole day (phase 2 included) is in the read model, a campaign page opened
   during the day has converged, without a reload, to ``/api/campaigns/{id}``; so has a
   freshly loaded one (sent, not sent, unsubscribed, every status count of the "contacts
   reached" table, every rate tile, formatted).
4. The wording switch shows the catalog's smsmode / Emarsys names.
5. The hard-bounce row's contact list equals the API's listing, phones in full; the
   pager is followed (on a list long enough to have a second page).
6. The list's CSV download has the JSON rows (ids, statuses, error codes, ISO 8601 UTC).
7. A campaign named ``<script>alert(1)</script>`` with text ``<b>x</b>`` (and a hostile
   contact id) is shown as literal text: no element comes from it, no dialog opens.
8. A message page's timeline is its API history in version order; the removals page
   finds a phone typed in French national format.

A screenshot of the campaign page is saved in the test's tmp_path (and copied to
/tmp/dashboard-e2e.png) whatever the outcome. Every wait is bounded and says what it
waited for; every process is stopped in the fixtures' finalizers.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import math
import re
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from processors import catalog
from simulator.check import sends_counted
from simulator.scenario import (
    DEFAULT_BASE_MS,
    R_CAMPAIGN,
    R_DLR,
    R_SENT,
    TOPIC_CAMPAIGNS,
    TOPIC_DLR,
    TOPIC_MESSAGE_SENT,
    Emit,
    _national,
    generate,
)
from streams.devtools.simulate import GRACE_S, wait_quiescent
from streams.ops.clients import publish
from streams.topics import ensure_topics
from tests.harness import Cluster, ReadSide

pytestmark = pytest.mark.integration

SEED, MESSAGES, CAMPAIGNS = 23, 2500, 4
TOKEN = "e2e-dashboard-token"
COOKIE = "smstally_session"
CHUNK, PAUSE_S = 300, 0.25  # ~7 000 phase-1 records in ~24 chunks: several seconds of live traffic
LIVE_LAG_S = 2.0  # a page open during the day shows the API's final figures within this
DAY_TIMEOUT_S = 120.0  # bounds on a loaded machine; the day takes ~10-20 s
SHOT = Path("/tmp/dashboard-e2e.png")

XSS_ID = "cmp-e2e-xss"
XSS_NAME = "<script>alert(1)</script>"
XSS_TEXT = "<b>x</b>"
XSS_CONTACT = '"><img src=x onerror=alert(1)>'
SENT_STATUSES = tuple(s for s in catalog.STATUSES if s != catalog.NOT_SENT)
RATES = catalog.RATE_NAMES
CSV_HEADER = [
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
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ formatting (contract of format.py)
def num(n) -> str:
    return f"{int(n):,}"


def pct(x: float) -> str:
    """One decimal, half up on per mille; 0 -> 0%, 1 -> 100%, tiny -> <0.1%, almost all -> >99.9%."""
    if x <= 0:
        return "0%"
    if x >= 1:
        return "100%"
    p = math.floor(x * 1000 + 0.5)
    if p <= 0:
        return "<0.1%"
    if p >= 1000:
        return ">99.9%"
    return f"{p // 10}.{p % 10}%"


def iso_ms(text: str) -> int:
    assert ISO_UTC.fullmatch(text), f"not ISO 8601 UTC: {text!r}"
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


# ------------------------------------------------------------------ the hostile campaign
def hostile_campaign(base: int) -> tuple[list[Emit], dict]:
    """A launch with a hostile name and text, three delivered messages (Swiss numbers: the day
    only has FR/BE/ES ones, so no STOP attribution changes), and its expected stats."""
    emits = [
        Emit(
            TOPIC_CAMPAIGNS,
            XSS_ID,
            R_CAMPAIGN,
            {
                "event_id": "e2e-xss-cl",
                "campaign_id": XSS_ID,
                "name": XSS_NAME,
                "kind": "BATCH",
                "text": XSS_TEXT,
                "sender_id": "E2E",
                "sms_type": "marketing",
                "created_at": base - 3_600_000,
                "launched_at": base - 60_000,
                "launch_list_size": 3,
            },
        )
    ]
    for i in range(3):
        mid, sent_at = f"msg-e2e-xss-{i}", base + i * 1000
        emits.append(
            Emit(
                TOPIC_MESSAGE_SENT,
                mid,
                R_SENT,
                {
                    "event_id": f"e2e-xss-ms-{i}",
                    "campaign_id": XSS_ID,
                    "message_id": mid,
                    "contact_id": XSS_CONTACT if i == 0 else f"ct-e2e-{i}",
                    "phone": f"+4179123450{i}",
                    "sent_at": sent_at,
                    "outcome": "SUBMITTED",
                    "not_sent_reason": None,
                    "segments": 1,
                    "credits": 0.25,
                    "provider": "smpp",
                    "country": "CH",
                    "operator": None,
                },
            )
        )
        emits.append(
            Emit(
                TOPIC_DLR,
                mid,
                R_DLR,
                {
                    "event_id": f"e2e-xss-dlr-{i}",
                    "message_id": mid,
                    "campaign_id": XSS_ID,
                    "provider": "smpp",
                    "status": "DELIVRD",
                    "error_code": None,
                    "done_at": sent_at + 4000,
                    "received_at": sent_at + 4500,
                },
            )
        )
    expected = {
        "sent": 3,
        "not_sent": 0,
        "not_sent_by_reason": {},
        "status_counts": {"DELIVERED": 3},
        "unsubscribed": 0,
        "credits": 0.75,
        # contract §11: delivered 4 s after the send, provider smpp, no operator
        "delivery_seconds": {"le_5": 3},
        "by_provider": {"smpp": {"DELIVERED": 3}},
        "by_operator": {"unknown": {"DELIVERED": 3}},
        "name": XSS_NAME,
        "kind": "BATCH",
        "launch_list_size": 3,
    }
    return emits, expected


# ------------------------------------------------------------------ the day, published in the background
class Day:
    """Publishes the first chunk at once, the rest of phase 1 after ``go`` in paced chunks, then
    (once every send is counted and the workers are idle, as streams.devtools.simulate does) phase 2."""

    def __init__(self, cluster: Cluster, read: ReadSide):
        self.cluster, self.read = cluster, read
        sc = generate(seed=SEED, messages=MESSAGES, campaigns=CAMPAIGNS)
        xss, xss_expected = hostile_campaign(sc.params.get("base_time_ms", DEFAULT_BASE_MS))
        self.scenario = dataclasses.replace(sc, phase1=xss + sc.phase1)
        self.expected = dict(sc.expected.stats, **{XSS_ID: xss_expected})
        self.go, self.stop = threading.Event(), threading.Event()
        self.first_chunk_out, self.finished = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="publish-day", daemon=True)
        self.timings: dict[str, float] = {}

    def start(self) -> None:
        if not self.thread.is_alive() and not self.finished.is_set():
            self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # reported by wait_done()
            self.error = exc
        finally:
            self.finished.set()

    async def _publish(self) -> None:
        s = self.cluster.settings
        t0 = time.monotonic()
        await ensure_topics(s)
        p1 = self.scenario.phase1
        chunks = [p1[i : i + CHUNK] for i in range(0, len(p1), CHUNK)]
        await publish(s, chunks[0], self.cluster.codec)
        self.first_chunk_out.set()
        while not self.go.is_set():  # the browser gets ready to watch
            if self.stop.is_set():
                return
            await asyncio.sleep(0.05)
        for chunk in chunks[1:]:
            if self.stop.is_set():
                return
            await publish(s, chunk, self.cluster.codec)
            await asyncio.sleep(PAUSE_S)
        self.timings["phase 1 published"] = time.monotonic() - t0
        # Phase 2 only once every send is counted and the group is idle (STOP attribution).
        deadline = time.monotonic() + DAY_TIMEOUT_S
        while True:
            if self.stop.is_set():
                return
            status, body = await asyncio.to_thread(self.read.get_json, "/api/campaigns?limit=1000")
            if status == 200 and sends_counted(self.expected, {c["campaign_id"]: c for c in body["items"]}):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"phase 1's sends not all counted after {DAY_TIMEOUT_S}s")
            await asyncio.sleep(0.2)
        if not await wait_quiescent(s, timeout=DAY_TIMEOUT_S):
            raise TimeoutError("the worker group did not become idle after phase 1")
        await asyncio.sleep(GRACE_S)
        await publish(s, self.scenario.phase2, self.cluster.codec)
        self.timings["phase 2 published"] = time.monotonic() - t0

    def wait_first_chunk(self, timeout: float = 30.0) -> None:
        self.start()
        if not self.first_chunk_out.wait(timeout):
            raise TimeoutError(f"the first chunk of the day was not published within {timeout}s")
        self._raise()

    def wait_done(self, timeout: float = DAY_TIMEOUT_S) -> None:
        self.start()
        self.go.set()
        if not self.finished.wait(timeout):
            raise TimeoutError(f"publishing the day did not finish within {timeout}s")
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise AssertionError(f"publishing the day failed: {self.error!r}") from self.error

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)


@pytest.fixture
def day(tmp_path):
    """Broker, one worker, one ``smstally api`` with a token, and the (not yet started) day."""
    cluster = Cluster(tmp_path / "cluster", partitions=4)
    cluster.tmp.mkdir()
    read = ReadSide(cluster, token=TOKEN)
    d = None
    try:
        cluster.start()
        cluster.worker().wait_ready(60)
        read.start()
        read.wait_ready(60)
        d = Day(cluster, read)
        yield d
    finally:
        if d is not None:
            d.close()
        read.close()
        cluster.close()


# ------------------------------------------------------------------ page helpers
CHECK_TEXTS_JS = """(exp) => {
  const bad = [];
  for (const [sel, want] of Object.entries(exp)) {
    const els = document.querySelectorAll(sel);
    if (!els.length) { bad.push(sel + ': no such element'); continue; }
    els.forEach((e, i) => {
      const got = e.textContent.trim();
      if (got !== want) bad.push(sel + '[' + i + ']: ' + JSON.stringify(got) + ' instead of ' + JSON.stringify(want));
    });
  }
  return bad;
}"""

OWN_TEXT_JS = "e => [...e.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim()"


def campaign_figures(c: dict) -> dict[str, str]:
    """selector -> text the campaign page must show for the CampaignStats ``c``."""
    sent = c["sent"]
    assert sent > 0, f"{c['campaign_id']} has nothing sent"
    counts = c.get("status_counts") or {}
    rates = c["rates"]
    numer = dict(catalog.RATE_NUMERATORS)
    for name in RATES:  # the API's rates are the contract's fractions of sent
        n = c["unsubscribed"] if name == "unsubscribe" else sum(counts.get(s, 0) for s in numer[name])
        assert abs(rates[name] - n / sent) < 1e-9, f"rate {name}: {rates[name]} != {n}/{sent}"
    exp = {
        "[data-field='sent']": num(sent),
        "[data-field='not_sent']": num(c["not_sent"]),
        ".tiles [data-field='unsubscribed']": num(c["unsubscribed"]),
    }
    for s in SENT_STATUSES:
        exp[f"table.reached tr[data-row='count:{s}'] td[data-field='count:{s}']"] = num(counts.get(s, 0))
        exp[f"table.reached tr[data-row='count:{s}'] td[data-field='share:{s}']"] = pct(counts.get(s, 0) / sent)
    for name in RATES:
        exp[f".tiles .tile-value[data-field='rate:{name}']"] = pct(rates[name])
    for r, n in (c.get("not_sent_by_reason") or {}).items():
        exp[f"table.not-sent td[data-field='reason:{r}']"] = num(n)
    return exp


def converge(page, exp: dict[str, str], timeout: float, what: str) -> float:
    """Seconds until every selector of ``exp`` shows its text (polled, bounded); fails with the diff."""
    t0 = time.monotonic()
    while True:
        bad = page.evaluate(CHECK_TEXTS_JS, exp)
        if not bad:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not the API's figures after {timeout}s:\n  " + "\n  ".join(bad))
        page.wait_for_timeout(100)


def contacts_rows(page) -> list[dict]:
    return page.locator("table.contacts tbody tr").evaluate_all("""rows => rows.map(r => ({
        id: r.querySelector('td.col-msg a').textContent.trim(),
        href: r.querySelector('td.col-msg a').getAttribute('href'),
        contact: r.querySelector('td.col-contact').textContent.trim(),
        phone: [...r.children[2].childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim(),
    }))""")


def all_contact_pages(page) -> tuple[list[dict], int]:
    """Rows of the contact list the page shows, following "Next page" to the end; (rows, pages)."""
    rows, pages = [], 0
    while True:
        pages += 1
        rows += contacts_rows(page)
        nxt = page.locator("nav.pager a[rel=next]")
        if not nxt.count():
            return rows, pages
        assert pages < 50, "the pager does not end"
        with page.expect_navigation():
            nxt.click()


def status_labels(page) -> dict[str, str]:
    return {
        s: page.locator(f"table.reached tr[data-row='count:{s}'] td.col-status").evaluate(OWN_TEXT_JS)
        for s in SENT_STATUSES
    }


# ------------------------------------------------------------------ the test
@pytest.mark.timeout(420)  # above the sum of the bounded waits, so that those fail first, with their message
def test_dashboard_during_a_campaign_day(day: Day, browser_context, browser_page, tmp_path):
    read, base = day.read, day.read.api.url
    page = browser_page
    dialogs: list[str] = []
    js_errors: list[str] = []

    def watch(p):
        p.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
        p.on("pageerror", lambda e: js_errors.append(str(e)))

    watch(page)
    timings: dict[str, float] = {}
    t_start = time.monotonic()
    shot_campaign = {"id": None}

    try:
        # 1. ------------------------------------------------------------ login
        resp = page.goto(f"{base}/")
        assert resp is not None and resp.status == 401, f"/ without the cookie answered {resp and resp.status}"
        assert page.locator("form.login input[name=token]").is_visible(), "no login form on /"
        page.fill("form.login input[name=token]", "not-the-token")
        with page.expect_navigation() as nav:
            page.click("form.login button[type=submit]")
        assert nav.value.status == 401, f"a wrong token answered {nav.value.status}"
        assert page.locator(".note-error").is_visible(), "a wrong token shows no error"
        assert not [k for k in browser_context.cookies(base) if k["name"] == COOKIE], "a wrong token set a cookie"
        page.fill("form.login input[name=token]", TOKEN)
        with page.expect_navigation(url=f"{base}/") as nav:
            page.click("form.login button[type=submit]")
        assert nav.value.status == 200, f"after logging in / answered {nav.value.status}"
        assert page.locator("h1").text_content().strip() == "Campaigns"
        cookies = [k for k in browser_context.cookies(base) if k["name"] == COOKIE]
        assert len(cookies) == 1, f"no session cookie {COOKIE!r} after logging in: {browser_context.cookies(base)}"
        ck = cookies[0]
        assert ck["httpOnly"] is True, f"session cookie not HttpOnly: {ck}"
        assert ck["sameSite"] == "Strict", f"session cookie not SameSite=Strict: {ck}"
        assert TOKEN not in ck["value"], "the cookie holds the token itself"
        assert ck["name"] not in page.evaluate("document.cookie"), "the session cookie is readable from JS"
        timings["login"] = time.monotonic() - t_start

        # 2. ------------------------------------------------------------ live counters on the list
        day.wait_first_chunk()
        deadline = time.monotonic() + 30
        while True:  # the first chunk's campaigns reach the read model
            status, body = read.get_json("/api/campaigns?limit=1000")
            present = {c["campaign_id"]: c for c in body["items"]} if status == 200 else {}
            gaps = {
                cid: day.expected[cid]["sent"] - c["sent"]
                for cid, c in present.items()
                if cid != XSS_ID and c["sent"] > 0
            }
            if gaps:
                break
            assert time.monotonic() < deadline, f"no campaign with sends in the read model after 30s: {status} {body}"
            time.sleep(0.2)
        cid = max(gaps, key=gaps.get)
        assert gaps[cid] > 0, f"{cid}: every send already counted before the rest of the day was published"
        shot_campaign["id"] = cid
        page.goto(f"{base}/")
        cell = f"tr[data-campaign='{cid}'] [data-field='sent']"
        page.wait_for_selector("[data-live][data-state=live]", timeout=15_000)
        before = page.locator(cell).text_content().strip()
        page.evaluate("() => { window.__e2eNoReload = 'list'; }")
        # The campaign page, opened before the last changes, in a second tab.
        live = browser_context.new_page()
        watch(live)
        live.goto(f"{base}/campaigns/{quote(cid, safe='')}")
        live.wait_for_selector("[data-live][data-state=live]", timeout=15_000)
        live.evaluate("() => { window.__e2eNoReload = 'campaign'; }")
        t_go = time.monotonic()
        day.go.set()
        try:
            page.wait_for_function(
                "([sel, before]) => { const e = document.querySelector(sel);"
                " return e !== null && e.textContent.trim() !== before; }",
                arg=[cell, before],
                timeout=30_000,
            )
        except Exception as exc:
            raise AssertionError(
                f"{cell} stayed {before!r} for 30s while the day was published: no live update reached the list"
            ) from exc
        after = page.locator(cell).text_content().strip()
        assert page.evaluate("() => window.__e2eNoReload") == "list", "the list page was reloaded"
        timings["list cell moved"] = time.monotonic() - t_go
        print(
            f"\n[e2e] {cid}: sent {before} -> {after} live, {timings['list cell moved']:.2f}s after publishing resumed"
        )

        # 3. ------------------------------------------------------------ the whole day, then the campaign page
        day.wait_done()
        diff = read.wait_campaigns(day.expected, timeout=60)
        assert diff == [], "the read model never matched the day:\n" + "\n".join(diff)
        timings["day in the read model"] = time.monotonic() - t_go
        status, c = read.get_json(f"/api/campaigns/{quote(cid, safe='')}")
        assert status == 200, (status, c)
        exp = campaign_figures(c)
        lag = converge(live, exp, LIVE_LAG_S, f"the live page of {cid} (opened during the day)")
        assert live.evaluate("() => window.__e2eNoReload") == "campaign", "the campaign page was reloaded"
        timings["live page converged after"] = lag
        live.close()
        page.goto(f"{base}/campaigns/{quote(cid, safe='')}")
        converge(page, exp, 5.0, f"the freshly loaded page of {cid}")
        assert page.locator("h1").text_content().strip() == c["name"]

        # 4. ------------------------------------------------------------ wording switch
        for s, label in status_labels(page).items():  # smsmode is the default
            want = catalog.STATUSES[s].smsmode
            if want == "\u2014":  # smsmode has no name for it: the page uses its own
                assert label and label != "\u2014", f"{s}: empty smsmode label"
            else:
                assert label == want, f"{s}: smsmode label {label!r}, catalog says {want!r}"
        with page.expect_navigation(url=re.compile(r"wording=emarsys")):
            page.click("nav.switch a:text-is('Emarsys')")
        assert page.locator("nav.switch a[aria-current=true]").text_content().strip() == "Emarsys"
        for s, label in status_labels(page).items():
            assert label == catalog.STATUSES[s].emarsys, f"{s}: Emarsys label {label!r}"
        converge(page, exp, 5.0, f"{cid} in Emarsys wording")
        with page.expect_navigation(url=re.compile(r"wording=smsmode")):
            page.click("nav.switch a:text-is('smsmode')")
        labels = status_labels(page)
        assert labels["HARD_BOUNCE"] == catalog.STATUSES["HARD_BOUNCE"].smsmode, labels

        # 5. ------------------------------------------------------------ the hard-bounce contacts
        hard = read.all_items(f"/api/campaigns/{quote(cid, safe='')}/messages?status=HARD_BOUNCE")
        assert len(hard) == c["status_counts"].get("HARD_BOUNCE", 0) > 0, f"{cid}: no hard bounce to list"
        with page.expect_navigation(url=re.compile(r"/contacts\?status=HARD_BOUNCE")):
            page.click("table.reached tr[data-row='count:HARD_BOUNCE'] a:text-is('Contacts')")
        contacts_url = page.url
        first_page = contacts_rows(page)
        rows, pages = all_contact_pages(page)
        assert [r["id"] for r in rows] == [m["message_id"] for m in hard], (
            "the hard-bounce list's message ids are not the API's"
        )
        by_id = {m["message_id"]: m for m in hard}
        for r in rows:
            assert r["phone"] == by_id[r["id"]]["phone"] and "*" not in r["phone"], (
                f"{r['id']}: phone {r['phone']!r} shown, API has {by_id[r['id']]['phone']!r} (token set: in full)"
            )
        # The pager, on the shortest list that has a second page.
        longer = sorted(
            (n, k, s)
            for k in day.expected
            if k != XSS_ID
            for s, n in day.expected[k]["status_counts"].items()
            if n > 100
        )
        assert longer, "no contact list with more than one page in this day"
        n, pk, ps = longer[0]
        page.goto(f"{base}/campaigns/{quote(pk, safe='')}/contacts?status={ps}")
        prow, ppages = all_contact_pages(page)
        want = [m["message_id"] for m in read.all_items(f"/api/campaigns/{quote(pk, safe='')}/messages?status={ps}")]
        assert ppages == math.ceil(n / 100) >= 2, f"{pk} {ps}: {n} contacts on {ppages} pages"
        assert [r["id"] for r in prow] == want, f"{pk} {ps}: the pages' message ids are not the API's"

        # 6. ------------------------------------------------------------ CSV download
        page.goto(contacts_url)
        with page.expect_download() as dl:
            page.click("a.btn-primary[download]")
        download = dl.value
        assert download.failure() is None, download.failure()
        assert download.suggested_filename.endswith(".csv"), download.suggested_filename
        path = tmp_path / "hard-bounces.csv"
        download.save_as(path)
        table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        assert table[0] == CSV_HEADER, table[0]
        got = [dict(zip(CSV_HEADER, r)) for r in table[1:]]
        assert [r["message_id"] for r in got] == [m["message_id"] for m in hard]
        for r in got:
            m = by_id[r["message_id"]]
            assert (r["status"], r["error_code"], r["phone"]) == (m["status"], m["error_code"] or "", m["phone"]), (
                r,
                m,
            )
            assert iso_ms(r["sent_at"]) == m["sent_at"] and iso_ms(r["status_at"]) == m["status_at"], (r, m)

        # 7. ------------------------------------------------------------ hostile input shown as text
        page.goto(f"{base}/")
        row = page.locator(f"tr[data-campaign='{XSS_ID}']")
        assert row.locator("a.row-link").text_content() == XSS_NAME
        assert row.evaluate("r => r.querySelectorAll('script, b, img').length") == 0
        scripts = page.evaluate("() => [...document.scripts].map(s => s.getAttribute('src'))")
        assert scripts == ["/static/live.js"], f"unexpected script elements on the list: {scripts}"
        page.click(f"tr[data-campaign='{XSS_ID}'] a.row-link")
        page.wait_for_url(f"**/campaigns/{XSS_ID}")
        assert page.locator("h1").text_content() == XSS_NAME
        assert page.locator(".sms-text").text_content() == XSS_TEXT
        assert XSS_NAME in page.title(), page.title()
        assert page.evaluate("() => document.querySelectorAll('main script, main b, .sms-text *').length") == 0
        assert page.evaluate("() => [...document.scripts].map(s => s.getAttribute('src'))") == ["/static/live.js"]
        page.goto(f"{base}/campaigns/{XSS_ID}/contacts")
        contacts = {r["id"]: r["contact"] for r in contacts_rows(page)}
        assert contacts.get("msg-e2e-xss-0") == XSS_CONTACT, contacts
        assert page.evaluate("() => document.querySelectorAll('table.contacts img').length") == 0
        assert dialogs == [], f"dialogs fired: {dialogs}"

        # 8. ------------------------------------------------------------ a message page and the removals search
        page.goto(contacts_url)
        histories = {r["id"]: read.get_json(f"/api/messages/{quote(r['id'], safe='')}")[1] for r in first_page[:10]}
        mid = max(histories, key=lambda k: len(histories[k]["history"]))
        with page.expect_navigation(url=re.compile(r"/messages/")):
            page.click(f"table.contacts td.col-msg a[href='/messages/{quote(mid, safe='')}']")
        assert page.locator("h1").text_content().strip() == mid
        timeline = page.locator("ol.timeline li").evaluate_all("""items => items.map(li => ({
            status: li.querySelector('.tl-top .pill').getAttribute('title'),
            version: li.querySelector('.tl-meta .num-inline').textContent.trim()}))""")
        hist = histories[mid]["history"]
        assert [h["version"] for h in hist] == sorted(h["version"] for h in hist), "API history not in version order"
        assert timeline == [{"status": h["status"], "version": num(h["version"])} for h in hist], (timeline, hist)
        assert timeline[-1]["status"] == "HARD_BOUNCE"

        removals = read.all_items("/api/removals")
        fr = [r for r in removals if re.fullmatch(r"\+33[67]\d{8}", r.get("phone") or "")]
        assert fr, "no removal of a French mobile in this day"
        phone = next((r["phone"] for r in fr if r.get("message_id") == mid), fr[0]["phone"])
        national = _national(phone, 0)
        page.click("nav.mainnav a:text-is('Removals')")
        page.wait_for_url(f"{base}/removals")
        page.fill("form.filters input[name=phone]", national)
        with page.expect_navigation(url=re.compile(r"/removals\?phone=")):
            page.click("form.filters button[type=submit]")
        shown = page.locator("table.removals tbody tr td:nth-child(2)").all_text_contents()
        want = read.all_items(f"/api/removals?phone={quote(phone)}")
        assert shown and all(p.strip() == phone for p in shown), f"searching {national!r} shows {shown}"
        assert len(shown) == len(want), f"{len(shown)} rows for {phone}, the API has {len(want)}"
        assert page.locator("form.filters input[name=phone]").input_value() == national

        assert dialogs == [], f"dialogs fired: {dialogs}"
        assert js_errors == [], f"JavaScript errors: {js_errors}"
    except BaseException:
        screenshot(browser_context, base, shot_campaign["id"], tmp_path, best_effort=True)
        raise
    screenshot(browser_context, base, shot_campaign["id"], tmp_path, best_effort=False)
    timings.update(day.timings)
    timings["test body"] = time.monotonic() - t_start
    print("[e2e] " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    print(
        f"[e2e] compared: {len(exp)} figure selectors on {cid}; {len(rows)} hard bounces on {pages} page(s), "
        f"{len(got)} CSV rows; pager: {n} {ps} of {pk} on {ppages} pages; timeline of {mid}: "
        f"{[t['status'] for t in timeline]}; removals for {national!r}: {len(shown)} row(s)"
    )


def screenshot(context, base: str, cid: str | None, tmp_path: Path, best_effort: bool) -> None:
    """The campaign page, full height, in a tab of its own (a failing page stays as it was for
    the conftest's failure artifacts): tmp_path/campaign-page.png, copied to /tmp/dashboard-e2e.png."""
    out = tmp_path / "campaign-page.png"
    try:
        p = context.new_page()
        try:
            p.set_viewport_size({"width": 1400, "height": 900})
            p.goto(f"{base}/campaigns/{quote(cid, safe='')}" if cid else f"{base}/")
            try:  # the live indicator says "Live" once the event stream is open
                p.wait_for_selector("[data-live][data-state=live]", timeout=5_000)
            except Exception:
                if not best_effort:
                    raise
            p.screenshot(path=str(out), full_page=True)
        finally:
            p.close()
        shutil.copyfile(out, SHOT)
        print(f"[e2e] screenshot {out} (copied to {SHOT})")
    except Exception:
        if not best_effort:
            raise
