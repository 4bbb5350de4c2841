"""Comparing published CampaignStats with a scenario's expected totals.

Kept apart from the generator so the demo, the tests and the benchmark agree on what
"equal" means: every counted figure exactly, credits to the micro-credit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FIELDS = ("sent", "not_sent", "not_sent_by_reason", "status_counts", "unsubscribed")
#: Contract §11's figures (nested maps for the breakdowns).
BREAKDOWNS = ("delivery_seconds", "by_provider", "by_operator")


def _nz(d: Mapping[str, int] | None) -> dict[str, int]:
    return {k: v for k, v in (d or {}).items() if v}


def _nz_nested(d: Mapping[str, object] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in (d or {}).items():
        v = _nz(v) if isinstance(v, Mapping) else v
        if v:
            out[k] = v
    return out


def mismatches(
    expected: Mapping[str, dict], actual: Mapping[str, dict], summary: bool = True, breakdowns: bool = True
) -> list[str]:
    """What differs; ``breakdowns=False`` leaves out §11's figures (to compare with records
    published before they existed)."""
    out = []
    for cid, exp in sorted(expected.items()):
        got = actual.get(cid)
        if got is None:
            out.append(f"{cid}: no CampaignStats yet")
            continue
        for f in FIELDS:
            e, a = exp.get(f), got.get(f)
            if isinstance(e, dict):
                e, a = _nz(e), _nz(a)
            if e != a:
                out.append(f"{cid}: {f} expected {e} got {a}")
        for f in BREAKDOWNS if breakdowns else ():
            e, a = _nz_nested(exp.get(f)), _nz_nested(got.get(f))
            if e != a:
                out.append(f"{cid}: {f} expected {e} got {a}")
        if round(exp.get("credits", 0.0) * 1e6) != round(got.get("credits", 0.0) * 1e6):
            out.append(f"{cid}: credits expected {exp.get('credits')} got {got.get('credits')}")
        if summary:
            for f in ("name", "kind", "launch_list_size"):
                if f in exp and exp[f] != got.get(f):
                    out.append(f"{cid}: {f} expected {exp[f]!r} got {got.get(f)!r}")
    for cid in sorted(set(actual) - set(expected)):
        out.append(f"{cid}: unexpected campaign")
    return out


def suppression_mismatches(expected: Mapping[str, tuple[str, ...]], records: Iterable[Mapping]) -> list[str]:
    """Contract §11 on a read of ``sms.suppressions`` (``records`` in log order): per phone,
    versions never go back, and the latest says what is in force for exactly the phones
    ``expected`` lists (the others: none, or lifted)."""
    out: list[str] = []
    latest: dict[str, Mapping] = {}
    for r in records:
        phone, prev = r["phone"], latest.get(r["phone"])
        if prev is not None and r["version"] < prev["version"]:
            out.append(f"{_short(phone)}: suppression version went back from {prev['version']} to {r['version']}")
            continue
        latest[phone] = r
    got = {p: tuple(r["reasons"]) for p, r in latest.items() if r["suppressed"]}
    wrong = sorted(p for p in set(got) | set(expected) if got.get(p) != expected.get(p))
    if wrong:
        out.append(
            f"suppressions: {len(wrong)} phones differ, e.g. "
            + ", ".join(f"{_short(p)} expected {expected.get(p, ())} got {got.get(p, ())}" for p in wrong[:4])
        )
    return out


def _short(phone: str) -> str:
    return phone[:4] + "…" + phone[-2:]


def sends_counted(expected: Mapping[str, dict], actual: Mapping[str, dict]) -> bool:
    """Phase 1 is in when every message of every campaign is counted (sent + not sent)."""
    return all(
        cid in actual and actual[cid]["sent"] == e["sent"] and actual[cid]["not_sent"] == e["not_sent"]
        for cid, e in expected.items()
    )
