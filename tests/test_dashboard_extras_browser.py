"""Contract §11 on the read side end to end: records published to the real broker, a real
``smstally api`` (with a token) projecting them, Debian's Chromium driven by Playwright.

No worker: the test is the stream side here, publishing ``CampaignStats`` and
``Suppression`` records itself with the project's codec, as a worker would (so the figures
are known exactly). Checked:

1. The projector keeps each phone's highest ``version`` (records published out of order and
   twice), and ``POST /api/suppressions/check`` over HTTP answers from it.
2. The campaign page shows the delivery-time shares, p50/p95 as bucket bounds, the provider
   and operator tables; no error-rate warning below the threshold.
3. A newer CampaignStats (errors above ``SMSTALLY_ERROR_RATE_WARNING``, slower deliveries, a
   new operator) changes all of them on the open page without a reload (SSE + live.js).
4. The suppression lookup page, for a suppressed phone typed in national format (reasons in
   words, since when, links to the campaign and message) and for a phone never seen.

Screenshots of both pages are kept in tmp_path (and /tmp/dashboard-campaign-extras.png,
/tmp/dashboard-suppressions.png).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import pytest

from simulator.scenario import Emit
from streams.topics import ensure_topics
from tests.harness import Cluster, ReadSide
from tests.test_readmodel_suppressions import suppression as suppressed_record

pytestmark = pytest.mark.integration

TOKEN = "extras-token"
T0 = 1_764_597_780_000
CID = "cmp-extras"
SUPPRESSED = "+33612345678"  # typed as "06 12 34 56 78"
NEVER = "+33699999999"
LIFTED = "+33611112222"
SHOTS = {
    "campaign": Path("/tmp/dashboard-campaign-extras.png"),
    "suppressions": Path("/tmp/dashboard-suppressions.png"),
}


def stats(version: int, counts: dict, delivery: dict, by_provider: dict, by_operator: dict) -> dict:
    sent = sum(counts.values())
    return {
        "campaign_id": CID,
        "name": "Winter sale",
        "kind": "BATCH",
        "text": "ACME: -20% this weekend",
        "sender_id": "ACME",
        "sms_type": "marketing",
        "created_at": T0 - 60_000,
        "launched_at": T0,
        "launch_list_size": sent,
        "version": version,
        "updated_at": T0 + version,
        "sent": sent,
        "not_sent": 0,
        "not_sent_by_reason": {},
        "status_counts": counts,
        "unsubscribed": 0,
        "credits": float(sent),
        "rates": {
            "receipt": counts.get("DELIVERED", 0) / sent,
            "delivery": counts.get("DELIVERED", 0) / sent,
            "waiting": counts.get("PENDING", 0) / sent,
            "temporary_error": counts.get("SOFT_BOUNCE", 0) / sent,
            "permanent_error": counts.get("HARD_BOUNCE", 0) / sent,
            "unknown": 0.0,
            "unsubscribe": 0.0,
        },
        "first_sent_at": T0,
        "last_event_at": T0 + 1000,
        "delivery_seconds": delivery,
        "by_provider": by_provider,
        "by_operator": by_operator,
    }


#: 100 sent, 2 % errors (below the default 3 %); 60 of 97 delivered within 10 s.
CALM = stats(
    1,
    {"DELIVERED": 97, "SOFT_BOUNCE": 1, "HARD_BOUNCE": 1, "PENDING": 1},
    {"le_5": 40, "le_10": 20, "le_30": 20, "le_600": 15, "le_3600": 2},
    {"smpp": {"DELIVERED": 60, "PENDING": 1}, "twilio": {"DELIVERED": 37, "SOFT_BOUNCE": 1, "HARD_BOUNCE": 1}},
    {"Orange": {"DELIVERED": 97, "SOFT_BOUNCE": 1, "HARD_BOUNCE": 1, "PENDING": 1}},
)
#: 10 % errors; half delivered after a day.
STORMY = stats(
    2,
    {"DELIVERED": 90, "SOFT_BOUNCE": 4, "HARD_BOUNCE": 6},
    {"le_60": 45, "gt_259200": 45},
    {"smpp": {"DELIVERED": 50, "HARD_BOUNCE": 6}, "twilio": {"DELIVERED": 40, "SOFT_BOUNCE": 4}},
    {"Orange": {"DELIVERED": 60, "HARD_BOUNCE": 6}, "Free": {"DELIVERED": 30, "SOFT_BOUNCE": 4}},
)


def suppression(phone: str, version: int, reasons: list[str]) -> dict:
    dead = "PERMANENT_ERROR" in reasons
    return suppressed_record(
        phone,
        reasons,
        v=version,
        at=T0,
        contact_id="ct-42",
        campaign_id=CID if dead else None,
        message_id="msg-42" if dead else None,
    )


#: Out of order and repeated: the read model must end on the highest version of each phone.
SUPPRESSIONS = [
    suppression(SUPPRESSED, 3, ["PERMANENT_ERROR", "BLACKLISTED"]),
    suppression(SUPPRESSED, 1, ["BLACKLISTED"]),
    suppression(LIFTED, 2, []),
    suppression(SUPPRESSED, 2, []),
    suppression(LIFTED, 1, ["BLACKLISTED"]),
    suppression(SUPPRESSED, 3, ["PERMANENT_ERROR", "BLACKLISTED"]),
]


def emits(stats_recs=(), suppressions=()) -> list[Emit]:
    return [Emit("sms.campaign-stats", r["campaign_id"], "smstally.CampaignStats", r) for r in stats_recs] + [
        Emit("sms.suppressions", r["phone"], "smstally.Suppression", r) for r in suppressions
    ]


@pytest.fixture
def read_side(tmp_path):
    cluster = Cluster(tmp_path / "cluster", partitions=2)
    cluster.tmp.mkdir()
    read = ReadSide(cluster, token=TOKEN)
    try:
        cluster.start()
        asyncio.run(ensure_topics(cluster.settings))
        cluster.publish(emits([CALM], SUPPRESSIONS))
        read.start()
        read.wait_ready(60)
        yield cluster, read
    finally:
        read.close()
        cluster.close()


def publish_beside_the_browser(cluster: Cluster, records: list[Emit]) -> None:
    """In a thread of its own: Playwright's sync API keeps an event loop running in this one."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            cluster.publish(records)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert not t.is_alive() and not errors, errors or "publishing took over 60 s"


def texts(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_text_contents()]


def table(page, field: str) -> list[list[str]]:
    return page.eval_on_selector(
        f"[data-breakdown={field}]", "b => [...b.rows].map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def until(what: str, check, timeout: float = 10.0):
    """``check()`` until it is truthy; fails naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {got!r})")
        time.sleep(0.1)


def shot(page, name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    shutil.copyfile(out, SHOTS[name])


def test_suppressions_through_the_projector_and_the_check(read_side):
    _, read = read_side
    status, got = read.get_json("/api/suppressions/06%2012%2034%2056%2078")
    assert status == 200 and got == suppression(SUPPRESSED, 3, ["PERMANENT_ERROR", "BLACKLISTED"])
    assert read.get_json(f"/api/suppressions/{LIFTED}")[1] == suppression(LIFTED, 2, [])
    assert read.get_json(f"/api/suppressions/{NEVER}")[1] == {"phone": NEVER, "suppressed": False, "reasons": []}
    status, got = read.post_json("/api/suppressions/check", {"phones": [NEVER, LIFTED, "0612345678"]})
    assert got == {"suppressed": [{"index": 2, "phone": SUPPRESSED, "reasons": ["PERMANENT_ERROR", "BLACKLISTED"]}]}


def test_campaign_page_delivery_time_breakdowns_and_error_warning_live(read_side, browser_page, tmp_path):
    cluster, read = read_side
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{read.api.url}/login?token={TOKEN}&next=/campaigns/{CID}")
    page.wait_for_selector("[data-live][data-state=live]")
    within = {s: f"[data-field='within:{s}']" for s in (10, 60, 600, 3600)}
    # 97 delivered: 60 within 10 s, 80 within 1 min (and 30 s), 95 within 10 min, 97 within 1 h
    assert [page.text_content(within[s]) for s in within] == ["61.9%", "82.5%", "97.9%", "100%"]
    assert texts(page, ".percentile") == ["p50 \u2264 10 s", "p95 \u2264 10 min"]
    assert table(page, "by_provider") == [
        ["smpp", "61", "98.4%", "0%", "0%", "1.6%"],
        ["twilio", "39", "94.9%", "2.6%", "2.6%", "0%"],
    ]
    assert table(page, "by_operator") == [["Orange", "100", "97.0%", "1.0%", "1.0%", "1.0%"]]
    assert page.locator("[data-visible=error_warning]").is_hidden(), "2 % errors is below the 3 % warning"
    shot(page, "campaign", tmp_path)

    publish_beside_the_browser(cluster, emits([STORMY]))
    until("the error-rate warning", lambda: page.locator("[data-visible=error_warning]").is_visible())
    assert "10.0%" in page.text_content("[data-visible=error_warning]")
    until("p50/p95 of the new buckets", lambda: texts(page, ".percentile") == ["p50 \u2264 1 min", "p95 > 3 d"])
    assert [page.text_content(within[s]) for s in within] == ["0%", "50.0%", "50.0%", "50.0%"]
    assert page.get_attribute("[data-meter='within:60']", "width") == "50"
    assert table(page, "by_operator") == [
        ["Orange", "66", "90.9%", "0%", "9.1%", "0%"],
        ["Free", "34", "88.2%", "11.8%", "0%", "0%"],
    ]
    assert table(page, "by_provider")[0] == ["smpp", "56", "89.3%", "0%", "10.7%", "0%"]


def test_suppression_lookup_page(read_side, browser_page, tmp_path):
    _, read = read_side
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{read.api.url}/login?token={TOKEN}&next=/suppressions")
    assert page.locator("nav.mainnav a[aria-current=page]").text_content() == "Suppressions"
    page.fill("input[name=phone]", "06 12 34 56 78")
    with page.expect_navigation():
        page.click("form[role=search] button[type=submit]")
    result = page.locator(".suppression-result")
    assert result.get_attribute("data-suppressed") == "true"
    assert page.text_content("[data-verdict]").strip() == "Suppressed: do not send"
    assert page.text_content("#result-h").strip() == SUPPRESSED  # a token: in full
    reasons = texts(page, ".suppression-reasons li")
    assert reasons[0].startswith("Permanent error A message to this number bounced permanently")
    assert "since 2025-12-01 14:03:02 UTC" in reasons[0] and "since 2025-12-01 14:03:01 UTC" in reasons[1]
    assert page.get_attribute(f".suppression-result a[href='/campaigns/{CID}']", "href")
    assert page.get_attribute(".suppression-result a[href='/messages/msg-42']", "href")
    assert page.input_value("input[name=phone]") == "06 12 34 56 78"
    shot(page, "suppressions", tmp_path)

    page.fill("input[name=phone]", NEVER)
    with page.expect_navigation():
        page.click("form[role=search] button[type=submit]")
    assert result.get_attribute("data-suppressed") == "false"
    assert page.text_content("[data-verdict]").strip() == "Not suppressed"
    assert "never been suppressed" in page.text_content(".suppression-result")
