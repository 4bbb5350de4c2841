"""Comparing published CampaignStats with a scenario's expected totals.

Kept apart from the generator so the demo, the tests and the benchmark agree on what
"equal" means: every counted figure exactly, credits to the micro-credit.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def sends_counted(expected: Mapping[str, dict], actual: Mapping[str, dict]) -> bool:
    """Phase 1 is in when every message of every campaign is counted (sent + not sent)."""
    return all(
        cid in actual and actual[cid]["sent"] == e["sent"] and actual[cid]["not_sent"] == e["not_sent"]
        for cid, e in expected.items()
    )
