"""The operator's terminal report of one campaign, from a CampaignStats record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from processors import catalog


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(x: float) -> str:
    return f"{100 * x:6.2f} %"


def render(stats: dict[str, Any]) -> str:
    sent = stats["sent"]
    lines = [
        f"Campaign {stats['campaign_id']}  {stats.get('name') or '(summary not received yet)'}",
        f"  kind {stats.get('kind') or '-'}   type {stats.get('sms_type') or '-'}"
        f"   sender {stats.get('sender_id') or '-'}"
        f"   list size {stats.get('launch_list_size') if stats.get('launch_list_size') is not None else '-'}",
        f"  launched {_ts(stats.get('launched_at'))}   first sent {_ts(stats.get('first_sent_at'))}"
        f"   last event {_ts(stats.get('last_event_at'))}",
        f"  sent {sent}   not sent {stats['not_sent']}   unsubscribed {stats['unsubscribed']}"
        f"   credits {stats['credits']:.2f}   version {stats['version']}",
        "",
        "  Rates (of sent)",
    ]
    for name in catalog.RATE_NAMES:
        lines.append(f"    {name:<16}{_pct(stats['rates'].get(name, 0.0))}")
    lines += ["", f"  {'status':<18}{'count':>8}  {'share':>9}  {'smsmode':<40}{'Emarsys'}"]
    counts = stats["status_counts"]
    for name, info in catalog.STATUSES.items():
        n = counts.get(name, 0)
        base = sent if name != catalog.NOT_SENT else (sent + stats["not_sent"])
        share = _pct(n / base) if base else "     - "
        lines.append(f"  {name:<18}{n:>8}  {share:>9}  {info.smsmode:<40}{info.emarsys}")
    reasons = stats.get("not_sent_by_reason") or {}
    if reasons:
        lines += ["", "  Not sent, by reason"]
        for r in catalog.NOT_SENT_REASONS:
            if reasons.get(r):
                lines.append(f"    {r:<22}{reasons[r]:>8}")
    return "\n".join(lines)


def render_brief(all_stats: dict[str, dict[str, Any]]) -> str:
    """One line per campaign, for the live view."""
    out = [
        f"{'campaign':<14}{'sent':>7}{'n/sent':>7}{'recv%':>8}{'wait%':>8}{'temp%':>8}{'perm%':>8}{'unk%':>7}"
        f"{'unsub':>7}{'credits':>10}  version"
    ]
    for cid in sorted(all_stats):
        s = all_stats[cid]
        r = s["rates"]
        out.append(
            f"{cid:<14}{s['sent']:>7}{s['not_sent']:>7}{100 * r['receipt']:>8.1f}{100 * r['waiting']:>8.1f}"
            f"{100 * r['temporary_error']:>8.1f}{100 * r['permanent_error']:>8.1f}{100 * r['unknown']:>7.1f}"
            f"{s['unsubscribed']:>7}{s['credits']:>10.2f}  {s['version']}"
        )
    return "\n".join(out)
