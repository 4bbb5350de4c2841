"""Playwright (sync API) driving Debian's Chromium, for the dashboard tests.

    with ChromiumSession() as session:      # or the fixtures browser_context / browser_page
        page = session.page
        page.goto(url)

Playwright's own browser downloads are never used (``playwright install``
cannot download anything here): Chromium is the system one
(``shutil.which("chromium")`` or ``/usr/bin/chromium``; ``./run test`` installs
Debian's package when it is missing). Each session is a fresh persistent
context in a new, empty profile directory, removed on close, so tests share
no cookies or storage.

Clean-up: on close every Chromium process of the session is gone. Each
session has its own directory (``profile/`` is the user data dir, and
``XDG_CONFIG_HOME``/``XDG_CACHE_HOME`` of the browser point inside it, so its
crash handler writes there and not into ``$HOME/.config/chromium``). Playwright
starts the browser in its own process group, but Chromium's crash handler
(``chrome_crashpad_handler``) daemonises itself out of it; so we note the
process groups while the browser runs and after ``close()`` wait for every
process of those groups or naming the session directory to exit, then SIGKILL
what is left. (``--disable-crashpad-for-testing`` would avoid the handler, but
with Debian's Chromium 156 every navigation then fails with ``ERR_ABORTED``.)
Exited Chromium processes whose parent died first are reparented to PID 1 and
may show as ``<defunct>`` in ``pgrep`` for a moment, until PID 1 reaps them.

The sync API cannot run inside a running asyncio event loop (Playwright
raises); sessions and pages must be used from the thread that created them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CHROMIUM_ARGS",
    "ChromiumSession",
    "chromium_executable",
    "chromium_processes",
    "save_page_artifacts",
    "serve_directory",
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

DEFAULT_TIMEOUT_MS = 10_000


class BrowserUnavailable(RuntimeError):
    """No Chromium (or no Playwright) to drive."""


def chromium_executable() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        raise BrowserUnavailable(
            "Debian's chromium is not installed (no `chromium` on PATH, no /usr/bin/chromium). "
            "`./run test` installs it; by hand: apt-get install -y chromium"
        )
    return path


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _live(pid: int) -> bool:
    """Exists and is not a zombie (a zombie is dead; its reaper is not ours)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def chromium_processes(session_dir: str | os.PathLike, pgids: set[int] = frozenset()) -> list[int]:
    """Live processes whose command line names ``session_dir`` (the profile
    directory, the crash handler's database), or that belong to one of ``pgids``."""
    needle = os.fspath(session_dir)
    found = []
    for pid in _all_pids():
        if pid == os.getpid() or not _live(pid):
            continue
        if (pgids and _pgid(pid) in pgids) or any(needle in arg for arg in _cmdline(pid)):
            found.append(pid)
    return found


class ChromiumSession:
    """Playwright + a persistent Chromium context in a fresh profile directory.

    ``start()`` returns the BrowserContext; ``.page`` is its first page;
    ``launch_options`` are passed on to ``launch_persistent_context``.
    ``close()`` is idempotent, leaves no Chromium process behind and removes
    ``session_dir`` (``profile_dir`` is ``session_dir/profile``).
    """

    def __init__(self, *, default_timeout_ms: int = DEFAULT_TIMEOUT_MS, **launch_options):
        self.default_timeout_ms = default_timeout_ms
        self.launch_options = launch_options
        self.session_dir: Path | None = None
        self.profile_dir: Path | None = None
        self.playwright = None
        self.context = None
        self._pgids: set[int] = set()

    def start(self):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise BrowserUnavailable(
                "the Playwright sync API cannot run inside a running asyncio loop: "
                "use browser_page from a plain (non-async) test"
            )
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:  # pragma: no cover - dev extra not installed
            raise BrowserUnavailable(f"playwright is not installed ({exc}): pip install -e '.[dev]'") from exc
        executable = chromium_executable()
        self.session_dir = Path(tempfile.mkdtemp(prefix="smstally-chromium-"))
        self.profile_dir = self.session_dir / "profile"
        self.profile_dir.mkdir()
        try:
            self.playwright = sync_playwright().start()
            options = dict(
                user_data_dir=str(self.profile_dir),
                executable_path=executable,
                headless=True,
                args=list(CHROMIUM_ARGS),
                accept_downloads=True,
                env={
                    **os.environ,
                    "XDG_CONFIG_HOME": str(self.session_dir / "config"),
                    "XDG_CACHE_HOME": str(self.session_dir / "cache"),
                },
            )
            options.update(self.launch_options)
            self.context = self.playwright.chromium.launch_persistent_context(**options)
            self._pgids = {g for g in (_pgid(p) for p in chromium_processes(self.session_dir)) if g is not None} - {
                os.getpgrp()
            }
            self.context.set_default_timeout(self.default_timeout_ms)
            self.context.set_default_navigation_timeout(self.default_timeout_ms)
            if not self.context.pages:
                self.context.new_page()
        except BaseException:
            self.close()
            raise
        return self.context

    @property
    def page(self):
        assert self.context is not None, "the session is not started"
        return self.context.pages[0] if self.context.pages else self.context.new_page()

    def close(self) -> None:
        context, self.context = self.context, None
        playwright, self.playwright = self.playwright, None
        try:
            if context is not None:
                with contextlib.suppress(Exception):
                    context.close()
        finally:
            try:
                if playwright is not None:
                    with contextlib.suppress(Exception):
                        playwright.stop()
            finally:
                self._reap()

    def _reap(self, grace: float = 5.0) -> None:
        if self.session_dir is None:
            return
        deadline = time.monotonic() + grace
        while (left := chromium_processes(self.session_dir, self._pgids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while (left := chromium_processes(self.session_dir, self._pgids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.session_dir, ignore_errors=True)
        if left:  # pragma: no cover
            raise RuntimeError(f"Chromium processes {left} survived SIGKILL")

    def __enter__(self) -> ChromiumSession:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def save_page_artifacts(page, directory: str | os.PathLike, stem: str = "browser-failure") -> list[Path]:
    """A full-page screenshot and the page's HTML in ``directory``; returns the
    paths written (either may be missing if the page is gone)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    png, html = directory / f"{stem}.png", directory / f"{stem}.html"
    with contextlib.suppress(Exception):
        page.screenshot(path=str(png), full_page=True, timeout=5_000)
        written.append(png)
    with contextlib.suppress(Exception):
        html.write_text(page.content(), encoding="utf-8")
        written.append(html)
    return written


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_directory(directory: str | os.PathLike) -> Iterator[str]:
    """Serve ``directory`` with http.server on 127.0.0.1 (a free port) in a
    thread; yields the base url (``http://127.0.0.1:PORT``); shuts down after."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
