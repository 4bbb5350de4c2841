"""The read side end to end: a messy day through the real broker and a real worker, then
``smstally api`` processes (real ones) project the output topics into SQLite and into
PostgreSQL, and every route of contract §10 is checked against the simulator's expected
outcome and against the output topics themselves (no mocks: real broker, real database).

One day is published once (module scope); each read database gets its own API process,
started after the day, so ``/health/ready`` means it holds everything on the topics. The
SQLite API runs without a token (phones masked), the PostgreSQL one with a token (phones in
full, 401 without it).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import phonenumbers
import pytest

from processors import catalog
from processors.phones import normalize
from processors.removals import BLACKLISTED, PERMANENT_ERROR, removal_id
from simulator.check import mismatches, suppression_mismatches
from simulator.scenario import TOPIC_MESSAGE_SENT, _national, generate
from streams.devtools.simulate import run_simulation, wait_for_expected
from tests.harness import Cluster, ReadSide

pytestmark = pytest.mark.integration

SEED, MESSAGES, CAMPAIGNS = 11, 2000, 4
TOKEN = "t0k"
PAGE = 137  # an odd page size, so that pages end anywhere
STATUSES = tuple(catalog.STATUSES)
CATEGORIES = tuple(sorted({s.category for s in catalog.STATUSES.values()}))
REASONS = tuple(catalog.NOT_SENT_REASONS)
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
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -------------------------------------------------------------------------------- helpers
def latest(records: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for v in records:
        cur = out.get(v[key])
        if cur is None or v["version"] >= cur["version"]:
            out[v[key]] = v
    return out


def mask(phone: str) -> str:
    """Contract §10, written independently of readmodel/: every digit but the last four
    becomes ``*``; an E.164 number keeps ``+`` and its country code (``+33*******5678``)."""
    keep = 0
    if re.fullmatch(r"\+\d+", phone):
        keep = 1 + len(str(phonenumbers.parse(phone).country_code))
    digits = [i for i, ch in enumerate(phone) if ch.isdigit()]
    tail = set(digits[-4:])
    return "".join(ch if i < keep or i in tail or not ch.isdigit() else "*" for i, ch in enumerate(phone))


def cell(value: str | None) -> str:
    """A CSV cell as contract §10 writes it: ``'`` before what a spreadsheet would run."""
    if value is None:
        return ""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"\+\d+", value):
        return "'" + value
    return value


def iso_ms(text: str) -> int:
    """ISO 8601 UTC (``...Z``) back to epoch milliseconds; anything else fails."""
    assert text.endswith("Z"), text
    dt = datetime.fromisoformat(text)
    assert dt.utcoffset() == timedelta(0), text
    return (dt - EPOCH) // timedelta(milliseconds=1)


@dataclass
class Day:
    cluster: Cluster
    scenario: object
    stats: dict[str, dict]  # campaign_id -> latest CampaignStats on the topic
    messages: dict[str, dict]  # message_id -> latest MessageStatus on the topic
    versions: dict[str, dict[int, dict]]  # message_id -> version -> record (every one published)
    removals: dict[str, dict]  # event_id -> AddressBookRemoval (deduplicated)
    campaign_of: dict[str, str]  # message_id -> campaign_id (from the MessageSent emits)
    reason_of: dict[str, str | None]  # message_id -> not_sent_reason of its MessageSent
    suppressions: dict[str, dict]  # phone -> latest Suppression on the topic


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """Broker, one worker, the day in its two phases, and the output topics once complete."""
    cluster = Cluster(tmp_path_factory.mktemp("readmodel")).start()
    try:
        cluster.worker().wait_ready(90)
        scenario = generate(seed=SEED, messages=MESSAGES, campaigns=CAMPAIGNS)
        s = cluster.settings
        t0 = time.monotonic()
        assert asyncio.run(run_simulation(s, scenario, wait=True, timeout=180))
        ok, _, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=180))
        assert ok, "\n".join(diff)
        want_removals = {removal_id(r, cause) for r, _, cause in scenario.expected.removals}
        topics = ReadSide(cluster)  # no API process: the topic reader
        t = s.topics
        deadline = time.monotonic() + 60
        while True:  # until the worker is done with every output, then a snapshot of them
            topics.settled_end_offsets([t.campaign_stats, t.message_status, t.removals, t.suppressions])
            statuses = topics.topic_records(t.message_status)
            removals = topics.topic_records(t.removals)
            suppressions = topics.topic_records(t.suppressions)
            stats = latest(topics.topic_records(t.campaign_stats), "campaign_id")
            msgs = latest(statuses, "message_id")
            if (
                {m: v["status"] for m, v in msgs.items()} == scenario.expected.message_status
                and {r["event_id"] for r in removals} == want_removals
                and mismatches(scenario.expected.stats, stats) == []
                and suppression_mismatches(scenario.expected.suppressed, suppressions) == []
            ):
                break
            assert time.monotonic() < deadline, "the worker's outputs are not what the day implies"
        versions: dict[str, dict[int, dict]] = {}
        for v in statuses:
            versions.setdefault(v["message_id"], {})[v["version"]] = v
        sends = [e.value for e in scenario.phase1 if e.topic == TOPIC_MESSAGE_SENT]
        print(
            f"\nday: {len(scenario.phase1) + len(scenario.phase2)} events processed in "
            f"{time.monotonic() - t0:.1f}s; {len(statuses)} status records, {len(removals)} removal records"
        )
        yield Day(
            cluster,
            scenario,
            stats,
            msgs,
            versions,
            {r["event_id"]: r for r in removals},
            {v["message_id"]: v["campaign_id"] for v in sends},
            {v["message_id"]: v["not_sent_reason"] for v in sends},
            latest(suppressions, "phone"),
        )
    finally:
        cluster.close()


_db_names = iter(range(1, 1000))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def read(request, day):
    """One ``smstally api`` process on its own read database, started after the day."""
    if request.param == "sqlite":
        rs = ReadSide(day.cluster, read_db=f"sqlite:///{day.cluster.tmp}/read-{next(_db_names)}.sqlite3")
    else:
        pg = request.getfixturevalue("pg_cluster")
        rs = ReadSide(day.cluster, read_db=pg.new_database(f"readmodel_it_{next(_db_names)}"), token=TOKEN)
    try:
        t0 = time.monotonic()
        rs.start()
        body = rs.wait_ready(90)
        diff = rs.wait_campaigns(day.scenario.expected.stats, timeout=60)
        assert diff == [], "\n".join(diff)
        print(f"\n[{request.param}] smstally api ready after {time.monotonic() - t0:.1f}s: {body}")
        yield rs
    finally:
        rs.close()


def phone_out(rs: ReadSide, phone: str) -> str:
    return phone if rs.token else mask(phone)


def message_out(rs: ReadSide, rec: dict) -> dict:
    return dict(rec, phone=phone_out(rs, rec["phone"]))


def listing(rs: ReadSide, path: str, limit: int = PAGE) -> list[dict]:
    """Every item of a paged listing; checks that no item comes twice across the pages."""
    items = rs.all_items(path, limit=limit)
    if items:
        key = next(k for k in ("event_id", "message_id", "campaign_id") if k in items[0])
        ids = [i[key] for i in items]
        assert len(ids) == len(set(ids)), f"{path} (limit {limit}): an item listed twice"
    return items


def csv_rows(rs: ReadSide, path: str) -> list[list[str]]:
    status, headers, body = rs.request(path, timeout=30)
    assert status == 200, f"GET {path}: {status} {body[:300]!r}"
    assert headers["content-type"].startswith("text/csv"), headers
    text = body.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows and rows[0] == CSV_HEADER, rows[:1]
    assert text.endswith("\r\n"), "RFC 4180 lines end with CRLF"
    return rows[1:]


def q(**params) -> str:
    params = {k: v for k, v in params.items() if v is not None}
    return ("?" + urlencode(params)) if params else ""


# ------------------------------------------------------------------------------- health
def test_ready_once_caught_up_and_open_without_token(read):
    status, _, body = read.request("/health/ready", auth=False)
    assert status == 200
    assert json.loads(body) == {"ready": True, "caught_up": True, "broker": True, "database": True}
    assert read.request("/health/live", auth=False)[0] == 200
    status, _, metrics = read.request("/metrics", auth=False)
    assert status == 200 and "smstally_api_ready 1.0" in metrics.decode()


# ---------------------------------------------------------------------------- campaigns
def test_campaigns_equal_expected_stats_and_the_topic(read, day):
    items = listing(read, "/api/campaigns", limit=1000)
    got = {c["campaign_id"]: c for c in items}
    assert len(got) == len(items) == CAMPAIGNS
    assert mismatches(day.scenario.expected.stats, got) == []
    assert got == day.stats, "each item is the latest CampaignStats on the topic, as published"
    for cid, rec in day.stats.items():
        status, one = read.get_json(f"/api/campaigns/{quote(cid)}")
        assert status == 200 and one == rec


def _order(items: list[dict], sort: str) -> list[str]:
    key = {
        "launched_at": lambda c: (c.get("launched_at") if c.get("launched_at") is not None else -1, c["campaign_id"]),
        "name": lambda c: ((c.get("name") or "").lower(), c["campaign_id"]),
        "sent": lambda c: (c["sent"], c["campaign_id"]),
    }[sort.lstrip("-")]
    return [c["campaign_id"] for c in sorted(items, key=key, reverse=sort.startswith("-"))]


@pytest.mark.parametrize("sort", ["launched_at", "-launched_at", "name", "-sent", None])
def test_campaign_sort_orders_and_paging(read, day, sort):
    everything = list(day.stats.values())
    want = _order(everything, sort or "-launched_at")  # -launched_at is the default
    for limit in (1, 2, 3, 1000):
        items = listing(read, "/api/campaigns" + q(sort=sort), limit=limit)
        ids = [c["campaign_id"] for c in items]
        assert ids == want, f"sort={sort} limit={limit}"
    # paging combined with a filter
    for kind in ("BATCH", "AUTOMATED"):
        ids = [c["campaign_id"] for c in listing(read, "/api/campaigns" + q(sort=sort, kind=kind), limit=1)]
        assert ids == [c for c in want if day.stats[c]["kind"] == kind]


def test_campaign_filters(read, day):
    everything = list(day.stats.values())

    def ids(**params) -> set[str]:
        items = listing(read, "/api/campaigns" + q(**params), limit=2)
        out = [c["campaign_id"] for c in items]
        assert len(out) == len(set(out)), f"duplicates with {params}"
        return set(out)

    def where(pred) -> set[str]:
        return {c["campaign_id"] for c in everything if pred(c)}

    kinds = {c["kind"] for c in everything}
    assert kinds == {"BATCH", "AUTOMATED"}, "the day should have both kinds"
    for kind in kinds:
        assert ids(kind=kind) == where(lambda c: c["kind"] == kind)
    # q: a case-insensitive substring of the name or of the id, with LIKE's own characters literal
    names = [c["name"] for c in everything]
    probes = [
        "",
        "CMP-",
        f"cmp-{SEED}-0{CAMPAIGNS}",
        f"-{SEED}-01".upper(),
        "zzz-nothing",
        "%",
        "_",
        "\\",
        "'",
        "-30%",
        "é",
        "É",
        "(CORRIGÉ)",
    ]
    for n in names:
        probes += [n.upper(), n[2:7].swapcase(), n[-4:]]
    for probe in probes:
        p = probe.lower()
        want = where(lambda c: p in (c["name"] or "").lower() or p in c["campaign_id"].lower())
        assert ids(q=probe) == want, f"q={probe!r}"
    assert ids(q="%") == where(lambda c: "%" in c["name"]), "% is a literal in q"
    assert ids(q="_") == set(), "_ is a literal in q"
    assert ids(q="zzz-nothing") == set()
    # launched_from / launched_to: inclusive bounds, epoch ms
    for c in everything:
        at = c["launched_at"]
        assert ids(launched_from=at) == where(lambda x: x["launched_at"] >= at)
        assert ids(launched_to=at) == where(lambda x: x["launched_at"] <= at)
        assert ids(launched_from=at, launched_to=at) == where(lambda x: x["launched_at"] == at)
        assert ids(launched_from=at + 1, kind="BATCH") == where(
            lambda x: x["launched_at"] > at and x["kind"] == "BATCH"
        )
    assert ids(launched_from=0, launched_to=0) == set()
    # all filters at once
    c = max(everything, key=lambda x: x["sent"])
    assert ids(
        q=c["campaign_id"].upper(),
        kind=c["kind"],
        launched_from=c["launched_at"],
        launched_to=c["launched_at"],
        sort="-sent",
    ) == {c["campaign_id"]}


# ----------------------------------------------------------------------------- messages
def _expected_sets(day: Day):
    """(campaign, filter, value) -> message ids, from the simulator alone."""
    want: dict[tuple[str, str, str], set[str]] = {}
    for mid, st in day.scenario.expected.message_status.items():
        cid = day.campaign_of[mid]
        want.setdefault((cid, "status", st), set()).add(mid)
        want.setdefault((cid, "category", catalog.STATUSES[st].category), set()).add(mid)
        if st == catalog.NOT_SENT:
            want.setdefault((cid, "not_sent_reason", day.reason_of[mid] or "OTHER"), set()).add(mid)
    return want


FILTERS = (
    [("status", s) for s in STATUSES]
    + [("category", c) for c in CATEGORIES]
    + [("not_sent_reason", r) for r in REASONS]
)


def test_message_listings_by_status_category_and_reason_equal_expected(read, day):
    want = _expected_sets(day)
    assert any(
        day.reason_of[m] is None and st == catalog.NOT_SENT for m, st in day.scenario.expected.message_status.items()
    ), "the day should have a reasonless NOT_SENT"
    checked = 0
    for cid in day.stats:
        for field, value in FILTERS:
            items = listing(read, f"/api/campaigns/{quote(cid)}/messages" + q(**{field: value}))
            got = [m["message_id"] for m in items]
            assert len(got) == len(set(got)), f"{cid} {field}={value}: a message listed twice across pages"
            assert got == sorted(got), "listed in message_id order"
            assert set(got) == want.get((cid, field, value), set()), f"{cid} {field}={value}"
            assert all(m["campaign_id"] == cid for m in items)
            checked += len(got)
    assert checked == 2 * MESSAGES + sum(
        1 for s in day.scenario.expected.message_status.values() if s == catalog.NOT_SENT
    )


def test_message_rows_are_the_latest_status_on_the_topic(read, day):
    seen = set()
    for cid in day.stats:
        for m in listing(read, f"/api/campaigns/{quote(cid)}/messages", limit=1000):
            assert m == message_out(read, day.messages[m["message_id"]]), m["message_id"]
            seen.add(m["message_id"])
    assert seen == set(day.messages)
    # error_code, the fourth filter, and several filters at once
    codes = {(m["campaign_id"], m["error_code"]) for m in day.messages.values() if m["error_code"]}
    assert codes, "the day should have error codes"
    for cid, code in sorted(codes)[:12]:
        got = {m["message_id"] for m in listing(read, f"/api/campaigns/{quote(cid)}/messages" + q(error_code=code))}
        assert got == {m for m, v in day.messages.items() if v["campaign_id"] == cid and v["error_code"] == code}
        got = {
            m["message_id"]
            for m in listing(
                read, f"/api/campaigns/{quote(cid)}/messages" + q(error_code=code, category="permanent_error")
            )
        }
        assert got == {
            m
            for m, v in day.messages.items()
            if v["campaign_id"] == cid and v["error_code"] == code and v["category"] == "permanent_error"
        }


def test_csv_has_the_same_rows_as_the_json_listing(read, day):
    masked_cells = 0
    for cid in day.stats:
        for field, value in [(None, None)] + FILTERS:
            params = {field: value} if field else {}
            items = listing(read, f"/api/campaigns/{quote(cid)}/messages" + q(**params), limit=1000)
            rows = csv_rows(read, f"/api/campaigns/{quote(cid)}/messages.csv" + q(**params))
            assert len(rows) == len(items), f"{cid} {params}"
            for row, m in zip(rows, items):
                assert row[:8] == [cell(m[f]) for f in CSV_HEADER[:8]], (row, m)
                assert iso_ms(row[8]) == m["sent_at"] and iso_ms(row[9]) == m["status_at"]
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row[8]), row[8]
                full = day.messages[m["message_id"]]["phone"]
                if read.token:
                    assert row[2] == cell(full)
                    assert not row[2].startswith("'") or not re.fullmatch(r"\+\d+", full)
                elif any(ch.isdigit() for ch in full):
                    assert "*" in row[2] and row[2] != full, "masked without a token"
                    if full.startswith("+"):
                        assert row[2].startswith("'+"), "a masked phone is not E.164: the cell is neutralized"
                        masked_cells += 1
    assert read.token or masked_cells > 0


def test_message_detail_with_history_in_version_order(read, day):
    rng = random.Random(SEED)
    by_versions = sorted(day.versions, key=lambda m: (-len(day.versions[m]), m))
    sample = by_versions[:25] + rng.sample(sorted(day.messages), 25)
    assert len(day.versions[by_versions[0]]) >= 2, "the day should have messages with several versions"
    for mid in sample:
        status, m = read.get_json(f"/api/messages/{quote(mid)}")
        assert status == 200, (mid, m)
        history = m.pop("history")
        assert m == message_out(read, day.messages[mid])
        versions = [h["version"] for h in history]
        assert versions == sorted(day.versions[mid]), f"{mid}: every published version, in order"
        assert history == [message_out(read, day.versions[mid][v]) for v in versions]
        assert history[-1] == m, "the history ends with the latest"


# ----------------------------------------------------------------------------- removals
def test_removals_deduplicated_equal_expected(read, day):
    items = listing(read, "/api/removals", limit=1000)
    ids = [r["event_id"] for r in items]
    assert len(ids) == len(set(ids)), "deduplicated by event_id"
    keys = [(r["at"], r["event_id"]) for r in items]
    assert keys == sorted(keys, reverse=True), "newest first"
    want = {}
    for reason, phone, cause in day.scenario.expected.removals:
        want[removal_id(reason, cause)] = (reason, phone, cause)
    assert set(ids) == set(want)
    for r in items:
        reason, phone, cause = want[r["event_id"]]
        assert r["reason"] == reason and r["phone"] == phone_out(read, phone)
        if reason == PERMANENT_ERROR:
            assert r["message_id"] == cause and r["status"] == "HARD_BOUNCE"
        else:
            assert reason == BLACKLISTED and r["message_id"] is None
        assert r == dict(day.removals[r["event_id"]], phone=phone_out(read, day.removals[r["event_id"]]["phone"]))
    # small pages: the same listing
    assert listing(read, "/api/removals", limit=7) == items
    # by reason
    for reason in (PERMANENT_ERROR, BLACKLISTED, "OTHER"):
        got = listing(read, "/api/removals" + q(reason=reason), limit=11)
        assert got == [r for r in items if r["reason"] == reason]
    assert {r["reason"] for r in items} == {PERMANENT_ERROR, BLACKLISTED}


def test_suppressions_from_the_worker_answer_the_check_and_the_lookup(read, day):
    """Contract §11 end to end: the worker's sms.suppressions, projected, answer a send list
    of every phone of the day (and two never seen) exactly as the day implies."""
    sends = [e.value for e in day.scenario.phase1 if e.topic == TOPIC_MESSAGE_SENT]
    phones = sorted({normalize(v["phone"])[0] for v in sends} | set(day.suppressions)) + [
        "+33600000001",
        "+33600000002",
    ]
    status, got = read.post_json("/api/suppressions/check", {"phones": phones})
    assert status == 200, got
    answered = {phones[h["index"]]: tuple(h["reasons"]) for h in got["suppressed"]}
    assert answered == day.scenario.expected.suppressed
    assert all(h["phone"] == phone_out(read, phones[h["index"]]) for h in got["suppressed"])
    for phone in sorted(day.scenario.expected.suppressed)[:5]:
        written = _national(phone, 1) if phone.startswith("+33") else phone  # as a sender may have it
        status, rec = read.get_json(f"/api/suppressions/{quote(written, safe='')}")
        assert status == 200 and rec == dict(day.suppressions[phone], phone=phone_out(read, phone))
    lifted = [p for p, r in day.suppressions.items() if not r["suppressed"]]
    for phone in lifted[:3]:
        assert read.get_json(f"/api/suppressions/{quote(phone, safe='')}")[1]["reasons"] == []


def test_removals_by_phone_in_any_format(read, day):
    removed: dict[str, set[str]] = {}
    for r in day.removals.values():
        removed.setdefault(r["phone"], set()).add(r["event_id"])
    fr = sorted(p for p in removed if p.startswith("+336") or p.startswith("+337"))
    assert fr, "the day should remove French mobiles"
    several = [p for p in fr if len(removed[p]) > 1]
    for phone in several[:3] + fr[:5]:
        for written in (_national(phone, 0), _national(phone, 1), _national(phone, 2), phone):
            got = listing(read, "/api/removals" + q(phone=written), limit=1)
            assert {r["event_id"] for r in got} == removed[phone], f"phone={written!r} for {phone}"
            assert all(r["phone"] == phone_out(read, phone) for r in got)
        got = listing(read, "/api/removals" + q(phone=_national(phone, 0), reason=PERMANENT_ERROR))
        assert {r["event_id"] for r in got} == {
            e for e in removed[phone] if day.removals[e]["reason"] == PERMANENT_ERROR
        }
    assert listing(read, "/api/removals" + q(phone="06 00 00 00 01")) == []
    for phone in removed:
        if not phone.startswith("+"):  # kept as given (unparseable): matched as given
            got = listing(read, "/api/removals" + q(phone=phone))
            assert {r["event_id"] for r in got} == removed[phone]


# -------------------------------------------------------------------------- access, phones
def test_phones_masked_without_a_token_in_full_with_one(read, day):
    cid = next(iter(day.stats))
    status, page = read.get_json(f"/api/campaigns/{quote(cid)}/messages?limit=50")
    assert status == 200
    for m in page["items"]:
        full = day.messages[m["message_id"]]["phone"]
        if read.token:
            assert m["phone"] == full
        else:
            assert m["phone"] == mask(full)
            if full.startswith("+33"):
                assert re.fullmatch(r"\+33\*{5,}\d{4}", m["phone"]), m["phone"]
    if read.token is None:
        return
    # with a token: nothing under /api/ without it, or with a wrong one
    mid = next(iter(day.messages))
    for path in (
        "/api/campaigns",
        f"/api/campaigns/{cid}",
        f"/api/campaigns/{cid}/messages",
        f"/api/campaigns/{cid}/messages.csv",
        f"/api/messages/{mid}",
        "/api/removals",
        "/api/campaigns?kind=BOTH",
        "/api/nothing-here",
    ):
        status, headers, body = read.request(path, auth=False)
        assert status in (401, 404) if path == "/api/nothing-here" else status == 401, (path, status, body)
        if status == 401:
            assert json.loads(body)["detail"] and headers.get("www-authenticate", "").startswith("Bearer")
    import urllib.request

    req = urllib.request.Request(f"{read.api.url}/api/campaigns", headers={"Authorization": "Bearer wrong"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("a wrong token was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert read.request(path, auth=False)[0] == 200, path


# ------------------------------------------------------------------------------- errors
def test_unknown_campaign_or_message_is_404(read, day):
    for path in (
        "/api/campaigns/cmp-none",
        "/api/campaigns/cmp-none/messages",
        "/api/campaigns/cmp-none/messages.csv",
        "/api/messages/msg-none",
        "/api/campaigns/cmp-none/messages?status=PENDING",
    ):
        status, _, body = read.request(path)
        assert status == 404, (path, status, body)
        assert "none" in json.loads(body)["detail"]


def _cursor(*parts) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def test_bad_requests_are_400_with_a_readable_detail(read, day):
    cid = quote(next(iter(day.stats)))
    _, page = read.get_json("/api/campaigns?limit=1&sort=name")
    name_cursor = page["next_cursor"]
    _, mpage = read.get_json(f"/api/campaigns/{cid}/messages?limit=1")
    bad = [
        ("/api/campaigns?colour=red", "colour"),
        ("/api/campaigns?kind=BOTH", "kind"),
        ("/api/campaigns?kind=batch", "kind"),
        ("/api/campaigns?sort=sent", "sort"),
        ("/api/campaigns?limit=0", "limit"),
        ("/api/campaigns?limit=1001", "limit"),
        ("/api/campaigns?limit=ten", "limit"),
        ("/api/campaigns?launched_from=yesterday", "launched_from"),
        ("/api/campaigns?launched_to=-5", "launched_to"),
        ("/api/campaigns?cursor=garbage!!", "cursor"),
        ("/api/campaigns?cursor=" + quote(_cursor("nope")), "cursor"),
        (f"/api/campaigns?sort=-sent&cursor={quote(name_cursor)}", "cursor"),  # another sort's cursor
        (f"/api/campaigns?cursor={quote(mpage['next_cursor'])}", "cursor"),  # another route's cursor
        (f"/api/campaigns/{cid}?verbose=1", "verbose"),
        (f"/api/campaigns/{cid}/messages?status=SENT", "status"),
        (f"/api/campaigns/{cid}/messages?status=pending", "status"),
        (f"/api/campaigns/{cid}/messages?category=lost", "category"),
        (f"/api/campaigns/{cid}/messages?not_sent_reason=BORED", "not_sent_reason"),
        (f"/api/campaigns/{cid}/messages?limit=0", "limit"),
        (f"/api/campaigns/{cid}/messages?limit=1001", "limit"),
        (f"/api/campaigns/{cid}/messages?cursor=%%%", "cursor"),
        (f"/api/campaigns/{cid}/messages?cursor=" + quote(_cursor("m", {"a": 1})), "cursor"),
        (f"/api/campaigns/{cid}/messages?page=2", "page"),
        (f"/api/campaigns/{cid}/messages.csv?status=SENT", "status"),
        (f"/api/campaigns/{cid}/messages.csv?limit=10", "limit"),
        ("/api/messages/x?history=0", "history"),
        ("/api/removals?reason=BORED", "reason"),
        ("/api/removals?limit=0", "limit"),
        ("/api/removals?limit=1001", "limit"),
        ("/api/removals?cursor=bm90IGEgY3Vyc29y", "cursor"),
        ("/api/removals?campaign_id=x", "campaign_id"),
    ]
    for path, what in bad:
        status, headers, body = read.request(path)
        assert status == 400, (path, status, body[:300])
        assert headers["content-type"].startswith("application/json"), (path, headers)
        detail = json.loads(body)["detail"]
        assert isinstance(detail, str) and what in detail, (path, detail)
    # the good ones next to them still answer
    for path in (
        "/api/campaigns?limit=1",
        "/api/campaigns?limit=1000",
        f"/api/campaigns/{cid}/messages?limit=1000",
        "/api/removals?limit=1",
    ):
        assert read.request(path)[0] == 200, path


def test_forged_cursors_of_the_right_shape_are_400_not_500(read, day):
    """Cursors are opaque, but one can be forged: well-formed JSON with values of the wrong
    type or out of range must be the caller's error (400), never a server error."""
    cid = quote(next(iter(day.stats)))
    forged = [
        "/api/campaigns?cursor=" + quote(_cursor("c-launched_at", "abc", "cmp")),
        "/api/campaigns?sort=name&cursor=" + quote(_cursor("cname", 5, 7)),
        "/api/campaigns?cursor=" + quote(_cursor("c-launched_at", 2**64 - 1, "cmp")),
        f"/api/campaigns/{cid}/messages?cursor=" + quote(_cursor("m", 12)),
        "/api/removals?cursor=" + quote(_cursor("r", "yesterday", "x")),
        "/api/removals?cursor=" + quote(_cursor("r", 2**63, "x")),
    ]
    wrong = []
    for path in forged:
        status, _, body = read.request(path)
        if status != 400 or "cursor" not in json.loads(body)["detail"]:
            wrong.append(f"{status} {body[:80]!r} for {path}")
    assert wrong == [], "\n".join(wrong)


def test_missing_token_is_401_before_any_query_check(read, day):
    cid = quote(next(iter(day.stats)))
    wrong = []
    want = 401 if read.token is not None else 400  # without a token configured there is nothing to miss
    for path in (
        "/api/campaigns?colour=red",
        f"/api/campaigns/{cid}?verbose=1",
        f"/api/campaigns/{cid}/messages?page=2",
        "/api/removals?campaign_id=x",
    ):
        status, _, body = read.request(path, auth=False)
        if status != want:
            wrong.append(f"{status} for {path}: {body[:100]!r}")
    assert wrong == [], "\n".join(wrong)


def test_smstally_export_writes_the_api_csv(read, day, tmp_path):
    """``smstally export`` goes through the API (token from SMSTALLY_API_TOKEN) and writes
    exactly the CSV the route serves, for a filtered list and for a whole campaign."""
    import os
    import subprocess
    import sys

    cid = max(day.stats, key=lambda c: day.stats[c]["sent"])
    env = dict(os.environ, SMSTALLY_API_URL=read.api.url)
    env.pop("SMSTALLY_API_TOKEN", None)
    if read.token:
        env["SMSTALLY_API_TOKEN"] = read.token
    for args, query in ((["--status", "HARD_BOUNCE"], q(status="HARD_BOUNCE")), ([], "")):
        out = tmp_path / f"export{len(args)}.csv"
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "export", cid, *args, "-o", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr
        status, _, body = read.request(f"/api/campaigns/{quote(cid)}/messages.csv{query}", timeout=30)
        assert status == 200
        assert out.read_bytes() == body
        assert f"rows written to {out}" in proc.stderr
    if read.token:  # a wrong token: a clear error, exit 1, no file left
        env["SMSTALLY_API_TOKEN"] = "wrong"
        bad = tmp_path / "bad.csv"
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "export", cid, "-o", str(bad)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 1 and "401" in proc.stderr and not bad.exists(), proc.stderr
        assert not (tmp_path / "bad.csv.part").exists()


def test_no_phone_number_in_full_in_the_api_log(read, day):
    """Phones are personal data: after a day, a rebuild and every route above, the API
    process's log holds none of the day's numbers in full."""
    phones = {m["phone"] for m in day.messages.values() if m["phone"].startswith("+")}
    log = read.api.log_path.read_text(errors="replace")
    leaked = sorted(p for p in phones if p in log or p[1:] in log)
    assert leaked == [], f"{len(leaked)} phone numbers in full in {read.api.log_path}"
