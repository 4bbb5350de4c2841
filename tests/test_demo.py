"""``./run demo`` without a terminal, as CI runs it: everything starts, the totals match on
the stats topic and in the API, the dashboard's login link is printed, and nothing is
left running afterwards (the ports it printed no longer answer)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def test_demo_exits_0_with_the_api_matching_and_leaves_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--messages", "1500", "--campaigns", "3"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    (tmp_path / "demo.out").write_text(out)
    assert proc.returncode == 0, out[-3000:]
    link = re.search(r"dashboard: http://127\.0\.0\.1:(\d+)/login\?token=(\S+)", out)
    assert link, out[-2000:]
    assert "the API's /api/campaigns equals them too" in out
    assert "its suppression check names the" in out  # contract §11, end to end
    broker = re.search(r"starting a worker on kafka://127\.0\.0\.1:(\d+)", out)
    assert broker
    for port in (int(link.group(1)), int(broker.group(1))):
        assert not _answers("127.0.0.1", port), f"port {port} still answers after the demo exited"
