"""Worker subprocesses for the demo and the tests: own process group, log file, no orphans.

A worker runs as a real ``smstally worker`` process (not in-process) so that killing it is
as real as in production. It dies with its parent (PR_SET_PDEATHSIG on Linux) and is also
stopped at interpreter exit, so a crashed test run cannot leave one behind.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Self

from readmodel.settings import DEFAULT_API_PORT

from ..config import Settings
from .broker import _die_with_parent

WORKER = ("streams.cli", "worker")


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path | str, module: tuple[str, ...] = WORKER):
        self.env = env
        self.log_path = Path(log_path)
        self.module = module  # what ``python -m`` runs: smstally's worker, or e.g. a benchmark's app
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        atexit.register(self.kill)

    @property
    def web_port(self) -> int:
        return int(self.env.get("SMSTALLY_WEB_PORT") or Settings.web_port)

    def start(self) -> Self:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.module],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self

    @property
    def running(self) -> bool:
        return self._live() is not None

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited (None while it runs or before it started)."""
        return self.proc.poll() if self.proc is not None else None

    def _live(self) -> subprocess.Popen[bytes] | None:
        """The process while it runs."""
        return self.proc if self.proc is not None and self.proc.poll() is None else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health/ready", timeout=1) as r:
                return bool(r.status == 200)
        except Exception:  # noqa: BLE001 - not ready, whatever the reason
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"worker exited with {self.returncode}; log: {self.log_path}\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s; log: {self.log_path}\n{self.tail()}")

    def readiness(self) -> str:
        """The worker's own account of its readiness, for diagnostics."""
        return self._page("/health/ready")

    def diagnose(self) -> str:
        """Its consumer's view of every partition, and a dump of every thread's and task's
        stack into its log (SIGUSR1: mode's worker "cries"): what a stuck worker waits on."""
        consumer = self._page("/debug/consumer")
        if (proc := self._live()) is not None:
            os.kill(proc.pid, signal.SIGUSR1)
        return f"consumer {consumer}; stacks dumped to {self.log_path}"

    def _page(self, path: str) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as r:
                return str(r.read().decode())
        except urllib.error.HTTPError as exc:
            return exc.read().decode(errors="replace")
        except Exception as exc:  # noqa: BLE001
            return repr(exc)

    def crash_report(self, context: int = 30) -> str:
        """The first crash Faust logged, with its traceback, or the log's tail."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        for i, line in enumerate(lines):
            if "Crashed reason=" in line or "Traceback (most recent call last)" in line:
                return "\n".join(lines[max(0, i - 3) : i + context])
        return "\n".join(lines[-40:])

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _signal(self, sig: int) -> None:
        if (proc := self._live()) is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL: the crash the guarantees are about."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        self._close()

    def stop(self, grace: float = 15.0) -> None:
        if (proc := self._live()) is not None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _close(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()


class ApiProcess(WorkerProcess):
    """``smstally api`` as a real process: the read side, killed and restarted like a worker."""

    def __init__(self, env: dict[str, str], log_path: Path | str):
        super().__init__(env, log_path, module=("streams.cli", "api"))

    @property
    def web_port(self) -> int:
        return int(self.env.get("SMSTALLY_API_PORT") or DEFAULT_API_PORT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"
