"""``smstally export``: a campaign's contact list as CSV, through the API (not the database).

The API is the one place that applies access rules and masking, so the export goes
through it like any other client; the CSV is copied as it streams in, with a progress
line on stderr when the list is large or the output is a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO
from urllib.parse import quote, urlencode

DEFAULT_API_URL = "http://127.0.0.1:8080"


class ExportError(RuntimeError):
    pass


def export_csv(
    campaign_id: str,
    out: IO[bytes],
    *,
    api_url: str | None = None,
    token: str | None = None,
    filters: dict[str, str] | None = None,
    progress: IO[str] | None = None,
) -> int:
    """Copy the CSV to ``out``; returns the number of data rows."""
    import httpx

    api_url = (api_url or os.environ.get("SMSTALLY_API_URL") or DEFAULT_API_URL).rstrip("/")
    token = token if token is not None else os.environ.get("SMSTALLY_API_TOKEN") or None
    query = urlencode({k: v for k, v in (filters or {}).items() if v})
    url = f"{api_url}/api/campaigns/{quote(campaign_id, safe='')}/messages.csv" + (f"?{query}" if query else "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    rows, started, shown = -1, time.monotonic(), 0.0
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(30.0, read=300.0)) as r:
            if r.status_code != 200:
                r.read()
                try:
                    detail = r.json().get("detail")
                except ValueError:
                    detail = r.text[:200]
                raise ExportError(f"{r.status_code} from {api_url}: {detail}")
            for chunk in r.iter_bytes(256 * 1024):
                out.write(chunk)
                rows += chunk.count(b"\n")
                now = time.monotonic()
                if progress is not None and now - shown > 0.5:
                    shown = now
                    progress.write(f"\r[export] {max(rows, 0):,} rows, {rows / max(now - started, 1e-6):,.0f} rows/s")
                    progress.flush()
    except httpx.HTTPError as exc:
        raise ExportError(f"cannot reach the API at {api_url}: {exc}") from exc
    if progress is not None and shown:
        progress.write(f"\r[export] {max(rows, 0):,} rows in {time.monotonic() - started:.1f}s\n")
    return max(rows, 0)


def cmd_export(args) -> int:
    filters = {
        "status": args.status,
        "category": args.category,
        "not_sent_reason": args.reason,
        "error_code": args.error_code,
    }
    try:
        if args.output in (None, "-"):
            n = export_csv(args.campaign, sys.stdout.buffer, filters=filters, progress=sys.stderr)
        else:
            tmp = args.output + ".part"
            try:
                with open(tmp, "wb") as f:
                    n = export_csv(args.campaign, f, filters=filters, progress=sys.stderr)
            except BaseException:
                os.unlink(tmp)
                raise
            os.replace(tmp, args.output)
            print(f"[export] {n:,} rows written to {args.output}", file=sys.stderr)
    except ExportError as exc:
        print(f"smstally export: {exc}", file=sys.stderr)
        return 1
    return 0
