"""tests/browser.py: Playwright on Debian's Chromium, and its fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.browser import ChromiumSession, chromium_processes, serve_directory

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>harness</title></head>
<body>
  <p id="status">waiting</p>
  <button id="go" type="button">Go</button>
  <script>
    document.getElementById("go").addEventListener("click", () => {
      document.getElementById("status").textContent = "clicked: " + navigator.userAgent.includes("Chrome");
    });
  </script>
</body></html>
"""


def test_click_changes_text_and_screenshot(browser_page, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    with serve_directory(site) as base:
        response = browser_page.goto(f"{base}/index.html")
        assert response is not None and response.status == 200
        assert browser_page.title() == "harness"
        assert browser_page.text_content("#status") == "waiting"
        browser_page.click("#go")
        browser_page.wait_for_function("document.getElementById('status').textContent !== 'waiting'", timeout=5_000)
        assert browser_page.text_content("#status") == "clicked: true"
        shot = tmp_path / "page.png"
        browser_page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 1000


def test_no_chromium_process_survives_close():
    session = ChromiumSession()
    session.start()
    try:
        session_dir = session.session_dir
        assert session.profile_dir.parent == session_dir
        session.page.set_content("<p>hello</p>")
        assert session.page.text_content("p") == "hello"
        pids = chromium_processes(session_dir, session._pgids)
        assert len(pids) >= 2, pids  # browser, zygotes, renderer, crash handler...
        assert all(Path(f"/proc/{p}/exe").resolve().parent == Path("/usr/lib/chromium") for p in pids)
    finally:
        session.close()
    assert chromium_processes(session_dir, session._pgids) == []
    live = [
        p
        for p in pids
        if os.path.exists(f"/proc/{p}") and Path(f"/proc/{p}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    ]
    assert live == [], f"chromium processes {live} survived close()"
    assert not session_dir.exists(), "the session directory is removed"
    session.close()  # idempotent


def test_a_failing_test_leaves_a_screenshot_and_the_html(tmp_path):
    """Runs a failing browser test in a child pytest that loads tests/conftest.py
    as a plugin, and looks for the artifacts in its tmp_path."""
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_inner.py").write_text(
        textwrap.dedent("""
        def test_fails(browser_page):
            browser_page.set_content("<h1>boom-marker</h1><p style='height:3000px'>tall</p>")
            assert browser_page.text_content("h1") == "something else"
    """)
    )
    basetemp = tmp_path / "basetemp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            f"--rootdir={inner}",
            f"--basetemp={basetemp}",
            str(inner / "test_inner.py"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    pngs = list(basetemp.rglob("browser-failure.png"))
    htmls = list(basetemp.rglob("browser-failure.html"))
    assert len(pngs) == 1 and len(htmls) == 1, proc.stdout
    assert pngs[0].read_bytes().startswith(PNG)
    assert "boom-marker" in htmls[0].read_text(encoding="utf-8")
    assert f"[browser_page] saved {pngs[0]}" in proc.stdout
    assert "browser artifacts" in proc.stdout  # the section of the failure report
